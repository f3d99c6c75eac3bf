// The engine's invariants on a device backend ("emulated": the device kernels on the host;
// "cuda": skipped, saying why, where no GPU is usable; scripts/test-gpu runs it): a request's
// tokens and logprobs are the same alone and in a continuous batch, whatever the prefill chunk
// size, and after preemption by recompute. Decode steps replay recordings here (step graphs, on
// by default), so the batch changes, preemptions and chunk sizes also check that a recording
// gives each step's own bits. The oracle is each request run alone on the same device (the
// device forward itself is compared with the CPU forward in device_forward_test).
#include "model/backend/device/scratch_bound.h"
#include "model/v4/step_shapes.h"
#include "tests/unit/worker/engine_device.h"
#include "tests/unit/worker/tiny_engine_fixture.h"

namespace v4 {
namespace {

class EngineDeviceInvariance : public EngineTest,
                               public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (IsSkipped()) return;
    std::string why;
    device_ = testing_device::engine_device(GetParam(), weights(), &why);
    if (!device_.backend) GTEST_SKIP() << why;
    ASSERT_TRUE(device_.weights) << why;
  }

  Streams run_here(const EngineOptions& o, const std::vector<GenerationRequest>& rs,
                   EngineStats* stats = nullptr) {
    return run_on(device_.weights->weights(), *device_.backend, o, rs, stats);
  }

  // Greedy, top-k sampled and drawn (no top-k) requests of mixed prompt lengths, with logprobs.
  static std::vector<GenerationRequest> requests(size_t n) {
    std::vector<GenerationRequest> rs = mixed_requests(n, true);
    for (size_t i = 0; i < rs.size(); ++i) {
      SamplingParams& p = rs[i].sampling;
      if (i % 3 == 0) p.temperature = 0.0f;
      if (i % 3 == 2) p.top_k = 0;  // drawn over the whole row where the logits are
    }
    return rs;
  }

  static void expect_same(const Streams& want, const Streams& got, const std::string& what) {
    ASSERT_EQ(want.size(), got.size()) << what;
    for (const auto& [id, events] : want) {
      const std::vector<GenerationEvent>& g = got.at(id);
      ASSERT_EQ(tokens_of(g), tokens_of(events)) << what << ", request " << id;
      for (size_t k = 0; k < events.size(); ++k) {
        EXPECT_EQ(g[k].logprob, events[k].logprob) << what << ", request " << id;
      }
    }
  }

  testing_device::EngineDevice device_;
};

TEST_P(EngineDeviceInvariance, AloneInABatchAndInSmallerChunks) {
  const std::vector<GenerationRequest> rs = requests(9);
  EngineStats stats;
  const Streams together = run_here(options(), rs, &stats);
  EXPECT_GT(static_cast<double>(stats.step_sequences) / static_cast<double>(stats.steps), 3.0);
  // A request alone decodes in steps of one shape: those replay a recording.
  Streams alone;
  uint64_t replays = 0;
  for (size_t i = 0; i < rs.size(); ++i) {
    EngineStats one;
    alone[i + 1] = run_here(options(), {rs[i]}, &one).at(1);
    replays += one.step_graphs.replays;
  }
  EXPECT_GT(replays, 0u);
  expect_same(alone, together, "alone against together");
  EngineOptions chunked = options();
  chunked.max_batch_tokens = 16;
  expect_same(together, run_here(chunked, rs), "16-token chunks against 64");
}

TEST_P(EngineDeviceInvariance, PreemptionByRecompute) {
  std::vector<GenerationRequest> rs = requests(3);
  for (GenerationRequest& r : rs) {
    r.prompt = prompt(112 + r.prompt.size() % 5, static_cast<uint32_t>(r.prompt.size()));
    r.sampling.max_tokens = 20;  // every request crosses a 128-token page boundary
  }
  const Streams free_run = run_here(options(), rs);
  EngineOptions tight = options();
  tight.total_pages = 3;  // 3 requests needing 2 pages each at the end
  EngineStats stats;
  const Streams constrained = run_here(tight, rs, &stats);
  EXPECT_GT(stats.preemptions, 0u);
  EXPECT_GT(stats.step_graphs.replays, 0u);
  expect_same(free_run, constrained, "preempted against free");
}

// The kernels' scratch that a server reserves before the weights go to the device
// (apps::engine_reserve: the bound of device/scratch_bound.h for the engine's largest step and
// for its recorded decode steps, reserved by Backend::reserve_scratch) is all an engine over FP8
// pages takes, decoded rows included: no slot grows past it, and no recording is dropped for a
// moved slot.
TEST_P(EngineDeviceInvariance, ReservedScratchHoldsEveryStep) {
  EngineOptions o = options();
  o.storage = KvStorage::kFp8;
  const std::vector<GenerationRequest> rs = requests(9);
  int64_t context = 0;  // the positions the requests reach (max_context would loosen the bound)
  for (const GenerationRequest& r : rs) {
    context = std::max<int64_t>(context, r.prompt.size() + r.sampling.max_tokens);
  }
  const V4Weights& w = device_.weights->weights();
  const ScratchShapes shapes = scratch_shapes(w, o.max_batch_tokens, o.max_seqs, context,
                                              w.config.n_expert_used, KvStorage::kFp8);
  ASSERT_TRUE(device_.backend->reserve_scratch(shapes.steps, shapes.recorded_steps));
  const uint64_t reserved = device::scratch_need(shapes.steps, {}).total() +
                            device::scratch_need(shapes.recorded_steps, {}).total();
  const uint64_t generation = device_.backend->scratch_generation();
  EXPECT_EQ(device_.backend->scratch_bytes(), reserved);
  run_here(o, rs);
  EngineStats alone;  // a request alone decodes in steps of one shape: those replay a recording
  run_here(o, {rs[0]}, &alone);
  EXPECT_GT(alone.step_graphs.replays, 0u);
  EXPECT_LE(device_.backend->scratch_requested_bytes(), reserved);
  EXPECT_EQ(device_.backend->scratch_bytes(), reserved);
  EXPECT_EQ(device_.backend->scratch_generation(), generation);
}

INSTANTIATE_TEST_SUITE_P(Backends, EngineDeviceInvariance, testing_device::device_backend_names());

}  // namespace
}  // namespace v4
