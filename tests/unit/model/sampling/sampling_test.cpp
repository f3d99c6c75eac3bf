// Sampling filters and determinism.
#include "model/sampling/sampling.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace v4 {
namespace {

TEST(Sampling, TemperatureZeroIsArgmaxWithLowestIdOnTies) {
  const std::vector<float> logits{1.0f, 3.0f, 3.0f, -2.0f};
  Sampler s({.temperature = 0.0f});
  EXPECT_EQ(s.sample(logits), 1);
  EXPECT_EQ(argmax(logits), 1);
}

TEST(Sampling, TopKOneAndTinyTopPAreGreedy) {
  const std::vector<float> logits{0.5f, 0.1f, 2.0f, 1.9f};
  Sampler k1({.temperature = 1.0f, .top_k = 1, .seed = 5});
  Sampler p({.temperature = 1.0f, .top_p = 1e-6f, .seed = 5});
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(k1.sample(logits), 2);
    EXPECT_EQ(p.sample(logits), 2);
  }
}

TEST(Sampling, MinPDropsUnlikelyTokensAndSeedsReproduce) {
  const std::vector<float> logits{5.0f, 4.5f, -10.0f, -10.0f};
  SamplingOptions o{.temperature = 1.0f, .min_p = 0.05f, .seed = 42};
  Sampler a(o), b(o);
  std::map<int32_t, int> counts;
  for (int i = 0; i < 2000; ++i) {
    const int32_t t = a.sample(logits);
    EXPECT_EQ(t, b.sample(logits));
    ++counts[t];
  }
  EXPECT_EQ(counts.count(2) + counts.count(3), 0u);
  // p(0)/p(1) = e^0.5 ≈ 1.65: both appear, token 0 more often (binomial, 2000 draws).
  EXPECT_GT(counts[0], counts[1]);
  EXPECT_GT(counts[1], 400);
}

}  // namespace
}  // namespace v4
