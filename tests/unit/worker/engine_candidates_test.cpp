// Sampled rows that return their best tokens or their drawn token instead of their logits
// (EngineOptions::select_candidates): every request gets the tokens, logprobs and top logprobs
// it gets from the whole row on the host, whether its sampler can use the candidates (greedy,
// top-k sampling, logprobs), is drawn where the logits are (sampling without a top-k) or needs
// the row (penalties), on the CPU, on the emulated device and on a GPU (skipped, saying why,
// where none is usable; scripts/test-gpu runs it).
#include <memory>

#include "model/backend/profiled_backend.h"
#include "tests/unit/worker/engine_device.h"
#include "tests/unit/worker/tiny_engine_fixture.h"

namespace v4 {
namespace {

class EngineCandidatesTest : public EngineTest {
 protected:
  static std::vector<GenerationRequest> requests() {
    std::vector<GenerationRequest> rs;
    auto add = [&](uint32_t seed, auto&& set) {
      GenerationRequest r;
      r.prompt = prompt(5 + seed * 11, seed);
      r.sampling.max_tokens = 6;
      set(r.sampling);
      rs.push_back(std::move(r));
    };
    add(1, [](SamplingParams& p) { p.logprobs = true; });
    add(2, [](SamplingParams& p) { p.top_logprobs = 20; });
    add(3, [](SamplingParams& p) {
      p.temperature = 0.8f;
      p.top_k = 40;
      p.top_p = 0.9f;
      p.seed = 7;
      p.top_logprobs = 3;
    });
    add(4, [](SamplingParams& p) {
      p.temperature = 1.5f;
      p.top_k = 64;
      p.min_p = 0.01f;
      p.seed = 8;
      p.logprobs = true;
    });
    // Sampling without a top-k: drawn by the backend, with and without logprobs.
    add(5, [](SamplingParams& p) {
      p.temperature = 1.0f;
      p.seed = 9;
      p.logprobs = true;
    });
    add(7, [](SamplingParams& p) {
      p.temperature = 0.05f;  // peaked: the nucleus is a few tokens
      p.top_p = 0.9f;
      p.min_p = 0.05f;
      p.seed = 10;
      p.top_logprobs = 5;
    });
    add(8, [](SamplingParams& p) {
      p.temperature = 0.7f;
      p.top_p = 0.95f;
      p.seed = 11;
    });
    // A penalty needs the row.
    add(6, [](SamplingParams& p) {
      p.presence_penalty = 0.5f;
      p.top_logprobs = 2;
    });
    return rs;
  }

  // Every request at once through one engine over `inner` (with `w`, weights in its memory),
  // timed op by op; how often it selected candidates and drew tokens.
  static Streams run_profiled(Backend& inner, const V4Weights& w, bool select, uint64_t* selections,
                              uint64_t* draws) {
    ProfiledBackend backend(inner);
    EngineOptions o = options();
    o.select_candidates = select;
    const Streams streams = run_on(w, backend, o, requests());
    const auto calls = [&](const char* op) -> uint64_t {
      const OpProfile::Table entries = backend.profile().entries();
      const auto it = entries.find(op);
      return it == entries.end() ? 0 : it->second.calls;
    };
    *selections = calls("top_logits");
    *draws = calls("draw_rows");
    return streams;
  }

  // `logprob_tolerance`: 0 where both runs sum the log-normalizer in the host's order.
  static void expect_same_streams(const Streams& got, const Streams& want,
                                  float logprob_tolerance) {
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [id, events] : want) {
      const std::vector<GenerationEvent>& g = got.at(id);
      ASSERT_EQ(tokens_of(g), tokens_of(events)) << "request " << id;
      for (size_t i = 0; i < events.size(); ++i) {
        EXPECT_NEAR(g[i].logprob, events[i].logprob, logprob_tolerance) << "request " << id;
        ASSERT_EQ(g[i].top_logprobs.size(), events[i].top_logprobs.size()) << "request " << id;
        for (size_t j = 0; j < events[i].top_logprobs.size(); ++j) {
          EXPECT_EQ(g[i].top_logprobs[j].token, events[i].top_logprobs[j].token);
          EXPECT_NEAR(g[i].top_logprobs[j].logprob, events[i].top_logprobs[j].logprob,
                      logprob_tolerance);
        }
      }
    }
  }
};

TEST_F(EngineCandidatesTest, CpuCandidatesGiveTheWholeRowsChoicesBitForBit) {
  uint64_t with = 0, without = 0, drawn = 0, undrawn = 0;
  CpuBackend cpu(2);
  const Streams selected = run_profiled(cpu, weights(), true, &with, &drawn);
  const Streams rows = run_profiled(cpu, weights(), false, &without, &undrawn);
  EXPECT_GT(with, 0u);
  EXPECT_EQ(without, 0u);
  EXPECT_GT(drawn, 0u);
  EXPECT_EQ(undrawn, 0u);
  expect_same_streams(selected, rows, 0.0f);
  EXPECT_EQ(selected.at(2).front().top_logprobs.size(), 20u);
}

// On a device ("emulated", the kernels on the host executor; "cuda", skipped saying why where
// no GPU is usable): its team selects from the logits its own forward made, which both runs
// share (the forward is deterministic), so the tokens are the same (a draw's sums are exact
// integers; CUDA's expf may move a weight by a unit of 2^-45, which moves a draw only at a
// boundary that close, and these seeded requests never meet one); the normalizer's fp64 order
// differs from the host's in its last bits only, so logprobs agree within float rounding.
class EngineCandidatesOnDevice : public EngineCandidatesTest,
                                 public ::testing::WithParamInterface<std::string> {};

TEST_P(EngineCandidatesOnDevice, CandidatesGiveTheWholeRowsChoices) {
  std::string why;
  const testing_device::EngineDevice d = testing_device::engine_device(GetParam(), weights(), &why);
  if (!d.backend) GTEST_SKIP() << why;
  ASSERT_TRUE(d.weights) << why;
  uint64_t with = 0, without = 0, drawn = 0, undrawn = 0;
  const Streams selected = run_profiled(*d.backend, d.weights->weights(), true, &with, &drawn);
  const Streams rows = run_profiled(*d.backend, d.weights->weights(), false, &without, &undrawn);
  EXPECT_GT(with, 0u);
  EXPECT_EQ(without, 0u);
  EXPECT_GT(drawn, 0u);
  EXPECT_EQ(undrawn, 0u);
  expect_same_streams(selected, rows, 1e-6f);
}

// Decode steps replayed from recordings (CUDA graphs on a GPU) give every request the tokens,
// logprobs and top logprobs of the same engine running each op: bit for bit, since both run the
// same kernels on the same device.
TEST_P(EngineCandidatesOnDevice, StepGraphsChangeNoToken) {
  std::string why;
  const testing_device::EngineDevice d = testing_device::engine_device(GetParam(), weights(), &why);
  if (!d.backend) GTEST_SKIP() << why;
  ASSERT_TRUE(d.weights) << why;
  // Straight on the device: a profile would stop the recordings.
  EngineOptions recorded = options(), plain = options();
  plain.step_graphs = 0;
  // Recorded at start for up to 8 sequences (8, 4, 2 and 1 rows, three sampling kinds); steps of
  // other shapes are recorded on first use. Batch sizes change no token either.
  recorded.capture_graphs = true;
  recorded.max_seqs = 8;
  EngineStats with_stats, without_stats;
  const Streams with = run_on(d.weights->weights(), *d.backend, recorded, requests(), &with_stats);
  const Streams without =
      run_on(d.weights->weights(), *d.backend, plain, requests(), &without_stats);
  EXPECT_GT(with_stats.step_graphs.replays, 0u);
  EXPECT_EQ(with_stats.step_graphs.broken, 0u);
  EXPECT_EQ(without_stats.step_graphs.captures + without_stats.step_graphs.replays, 0u);
  EXPECT_EQ(with_stats.start_graphs.batch_sizes, (std::vector<int64_t>{8, 4, 2, 1}));
  EXPECT_EQ(with_stats.start_graphs.recorded, 12u) << with_stats.start_graphs.stopped;
  EXPECT_TRUE(without_stats.start_graphs.batch_sizes.empty());
  // Neither the rows run at start nor a step's padding rows count as expert selections.
  EXPECT_EQ(with_stats.expert_selections, without_stats.expert_selections);
  expect_same_streams(with, without, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Backends, EngineCandidatesOnDevice,
                         testing_device::device_backend_names());

}  // namespace
}  // namespace v4
