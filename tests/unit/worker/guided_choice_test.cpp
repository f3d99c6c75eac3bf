// Guided choice without a model: the allowed next tokens as the output grows, and the sampler's
// mask on hand-made logits (greedy, seeded, logprobs of the masked distribution).
#include "worker/guided_choice.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "worker/request_sampler.h"

namespace v4 {
namespace {

using Ids = std::vector<int32_t>;

TEST(GuidedChoice, AllowsWhatExtendsAConsistentSequence) {
  GuidedChoice g({{1, 2, 3}, {1, 4}, {5}}, 9);
  EXPECT_EQ(g.allowed(), (Ids{1, 5}));
  g.advance(1);
  EXPECT_EQ(g.allowed(), (Ids{2, 4}));
  EXPECT_FALSE(g.complete());
  g.advance(4);
  EXPECT_TRUE(g.complete());
  EXPECT_EQ(g.allowed(), (Ids{9}));
}

TEST(GuidedChoice, EndTokenBesideALongerSequence) {
  GuidedChoice g({{1}, {1, 2}}, 9);
  g.advance(1);
  EXPECT_TRUE(g.complete());
  EXPECT_EQ(g.allowed(), (Ids{2, 9}));
  GuidedChoice no_end({{1}, {1, 2}}, std::nullopt);
  no_end.advance(1);
  EXPECT_TRUE(no_end.complete());
  EXPECT_EQ(no_end.allowed(), (Ids{2}));
}

std::vector<float> logits() {
  std::vector<float> l(16, 0.0f);
  l[7] = 10.0f;  // the favourite is never allowed below
  l[2] = 1.0f;
  l[4] = 2.0f;
  return l;
}

TEST(RequestSamplerGuided, GreedyPicksTheBestAllowedTokenAndStopsAfterTheSequence) {
  SamplingParams p;
  p.allowed_outputs = {{1, 2, 3}, {1, 4}};
  p.logprobs = true;
  p.top_logprobs = 5;
  RequestSampler s(p);
  const std::vector<float> l = logits();
  EXPECT_EQ(s.sample(l).token, 1);
  const SampledChoice c = s.sample(l);
  EXPECT_EQ(c.token, 4);
  // Logprobs of the masked distribution: only 2 and 4 have mass.
  ASSERT_EQ(c.top_logprobs.size(), 2u);
  EXPECT_EQ(c.top_logprobs[0].token, 4);
  EXPECT_EQ(c.top_logprobs[1].token, 2);
  EXPECT_NEAR(std::exp(c.top_logprobs[0].logprob) + std::exp(c.top_logprobs[1].logprob), 1.0, 1e-6);
  EXPECT_NEAR(c.logprob, 2.0 - std::log(std::exp(1.0) + std::exp(2.0)), 1e-6);
  EXPECT_TRUE(s.guided_complete());  // no stop token: {1, 4} ends the output
}

TEST(RequestSamplerGuided, StopTokenFollowsTheSequence) {
  SamplingParams p;
  p.allowed_outputs = {{1, 2, 3}, {1, 4}};
  p.stop_token_ids = {11, 12};
  RequestSampler s(p);
  const std::vector<float> l = logits();
  EXPECT_EQ(s.sample(l).token, 1);
  EXPECT_EQ(s.sample(l).token, 4);
  EXPECT_FALSE(s.guided_complete());  // the stop token is still to come
  EXPECT_EQ(s.sample(l).token, 11);
}

// Sampling over the allowed tokens only: over many seeds both choices appear and nothing else.
TEST(RequestSamplerGuided, SeededSamplingStaysInsideTheChoices) {
  std::set<Ids> seen;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_k = 3;
    p.top_p = 0.9f;
    p.seed = seed;
    p.allowed_outputs = {{1, 2, 3}, {1, 4}};
    RequestSampler s(p);
    std::vector<float> l = logits();
    l[4] = 1.0f;  // 2 and 4 equally likely
    Ids out;
    while (!s.guided_complete() && out.size() < 5) out.push_back(s.sample(l).token);
    EXPECT_TRUE(out == (Ids{1, 2, 3}) || out == (Ids{1, 4})) << out.size();
    seen.insert(out);
  }
  EXPECT_EQ(seen.size(), 2u);
}

}  // namespace
}  // namespace v4
