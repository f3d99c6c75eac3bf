// Prompt logprobs on the tiny model: the engine's entries against log_softmax of the forward's
// own logits for the whole prompt in one all_logits call, and their invariance to chunking,
// batching and the prefix cache.
#include "worker/prompt_logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tests/unit/worker/tiny_engine_fixture.h"

namespace v4 {
namespace {

constexpr uint32_t kTop = 5;

class PromptLogprobsTest : public EngineTest {
 protected:
  static GenerationRequest request(size_t n, uint32_t seed) {
    GenerationRequest r;
    r.prompt = prompt(n, seed);
    r.sampling.max_tokens = 3;
    r.sampling.logprobs = true;
    r.sampling.prompt_logprobs = kTop;
    return r;
  }

  static std::vector<PromptTokenLogprobs> prompt_entries(const std::vector<GenerationEvent>& s) {
    EXPECT_FALSE(s.empty());
    for (size_t i = 1; i < s.size(); ++i) EXPECT_TRUE(s[i].prompt_logprobs.empty());
    return s.empty() ? std::vector<PromptTokenLogprobs>{} : s.front().prompt_logprobs;
  }

  // Every prompt position's logits from one forward call over the whole prompt.
  static std::vector<float> reference_logits(const std::vector<int32_t>& tokens) {
    CpuBackend backend(2);
    V4Forward fwd(weights(), backend);
    ContiguousKvState state(weights().config, backend);
    SequenceInput in{&state, tokens, /*all_logits=*/true};
    Result<ForwardOutput> out = fwd.forward({&in, 1});
    EXPECT_TRUE(out);
    return out ? out->logits : std::vector<float>{};
  }
};

void expect_identical(const std::vector<PromptTokenLogprobs>& a,
                      const std::vector<PromptTokenLogprobs>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].token, b[i].token) << i;
    EXPECT_EQ(a[i].logprob, b[i].logprob) << i;
    EXPECT_EQ(a[i].rank, b[i].rank) << i;
    ASSERT_EQ(a[i].top.size(), b[i].top.size()) << i;
    for (size_t k = 0; k < a[i].top.size(); ++k) {
      EXPECT_EQ(a[i].top[k].token, b[i].top[k].token) << i << "/" << k;
      EXPECT_EQ(a[i].top[k].logprob, b[i].top[k].logprob) << i << "/" << k;
    }
  }
}

TEST_F(PromptLogprobsTest, EqualLogSoftmaxOfTheForwardLogits) {
  const GenerationRequest r = request(150, 3);
  const std::vector<PromptTokenLogprobs> got = prompt_entries(run(options(), {r}).at(1));
  const std::vector<float> logits = reference_logits(r.prompt);
  const size_t vocab = weights().config.n_vocab;
  ASSERT_EQ(logits.size(), r.prompt.size() * vocab);
  ASSERT_EQ(got.size(), r.prompt.size() - 1);
  for (size_t i = 1; i < r.prompt.size(); ++i) {
    // Row i - 1 predicts prompt token i.
    const float* row = &logits[(i - 1) * vocab];
    double sum = 0.0;
    const double mx = *std::max_element(row, row + vocab);
    for (size_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - mx);
    const double log_z = mx + std::log(sum);
    std::vector<int32_t> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    const PromptTokenLogprobs& e = got[i - 1];
    EXPECT_EQ(e.token, r.prompt[i]);
    // Only the final cast to float rounds: half an ulp of values of magnitude < 16.
    EXPECT_NEAR(e.logprob, row[r.prompt[i]] - log_z, 1e-6) << i;
    EXPECT_EQ(e.rank, std::find(order.begin(), order.end(), r.prompt[i]) - order.begin() + 1) << i;
    ASSERT_EQ(e.top.size(), kTop);
    for (size_t k = 0; k < kTop; ++k) {
      EXPECT_EQ(e.top[k].token, order[k]) << i << "/" << k;
      EXPECT_NEAR(e.top[k].logprob, row[order[k]] - log_z, 1e-6) << i << "/" << k;
    }
  }
}

TEST_F(PromptLogprobsTest, FirstTokenEventCarriesThemAndSamplingIsUnchanged) {
  GenerationRequest plain = request(40, 5);
  plain.sampling.prompt_logprobs.reset();
  const GenerationRequest asked = request(40, 5);
  const Streams s = run(options(), {plain, asked});
  EXPECT_EQ(tokens_of(s.at(1)), tokens_of(s.at(2)));
  EXPECT_TRUE(s.at(1).front().prompt_logprobs.empty());
  EXPECT_EQ(prompt_entries(s.at(2)).size(), 39u);
}

TEST_F(PromptLogprobsTest, OneTokenPromptHasNoEntries) {
  const Streams s = run(options(), {request(1, 0)});
  EXPECT_TRUE(prompt_entries(s.at(1)).empty());
  EXPECT_EQ(s.at(1).size(), 3u);
}

// The forward is invariant to chunking and batching, so the entries are bit-identical.
TEST_F(PromptLogprobsTest, IdenticalAcrossChunkingAndBatching) {
  const GenerationRequest r = request(300, 9);
  EngineOptions one_chunk = options();
  one_chunk.max_batch_tokens = 512;
  const std::vector<PromptTokenLogprobs> whole = prompt_entries(run(one_chunk, {r}).at(1));
  EngineOptions small = options();
  small.max_batch_tokens = 37;  // 300 tokens over nine chunks, none page-aligned
  expect_identical(whole, prompt_entries(run(small, {r}).at(1)));
  std::vector<GenerationRequest> batch = mixed_requests(5, true);
  batch.insert(batch.begin() + 2, r);
  expect_identical(whole, prompt_entries(run(options(), batch).at(3)));
}

// A preempted request recomputes its stream; its prompt entries still come once, unchanged.
TEST_F(PromptLogprobsTest, SurvivePreemption) {
  std::vector<GenerationRequest> rs;
  for (uint32_t i = 0; i < 6; ++i) {
    rs.push_back(request(100 + i * 5, i));
    rs.back().sampling.max_tokens = 30;  // every request crosses a 128-token page boundary
  }
  const Streams free_run = run(options(), rs);
  EngineOptions tight = options();
  tight.total_pages = 4;  // 6 requests needing 2 pages each at the end
  EngineStats stats;
  const Streams constrained = run(tight, rs, &stats);
  EXPECT_GT(stats.preemptions, 0u);
  for (size_t i = 1; i <= rs.size(); ++i) {
    EXPECT_EQ(tokens_of(free_run.at(i)), tokens_of(constrained.at(i))) << i;
    expect_identical(prompt_entries(free_run.at(i)), prompt_entries(constrained.at(i)));
  }
}

// Cached pages are never scored, so a request asking for prompt logprobs computes its whole
// prompt even when the cache holds it; its pages still serve later requests.
TEST_F(PromptLogprobsTest, TakeNoPrefixHitsButFillTheCache) {
  GenerationRequest plain = request(300, 11);
  plain.sampling.prompt_logprobs.reset();
  const GenerationRequest asked = request(300, 11);
  const std::vector<PromptTokenLogprobs> cold = prompt_entries(run(options(), {asked}).at(1));
  EngineOptions cached = options();
  cached.prefix_caching = true;

  CpuBackend backend(2);
  EngineCore core(weights(), backend, cached);
  Streams s;
  const std::vector<GenerationRequest> order{plain, asked, plain};
  for (size_t i = 0; i < order.size(); ++i) {
    ASSERT_TRUE(core.add(i + 1, order[i]));
    for (int step = 0; core.has_work() && step < 1000; ++step)
      for (GenerationEvent& e : core.step()) s[e.id].push_back(std::move(e));
  }
  EXPECT_EQ(s.at(1).front().cached_tokens, 0u);
  EXPECT_EQ(s.at(2).front().cached_tokens, 0u);
  EXPECT_EQ(s.at(3).front().cached_tokens, 256u);  // two full 128-token pages
  expect_identical(cold, prompt_entries(s.at(2)));
}

}  // namespace
}  // namespace v4
