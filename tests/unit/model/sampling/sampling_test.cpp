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

TEST(Sampling, DrawOfTokenIDependsOnlyOnSeedAndI) {
  const std::vector<float> logits{1.0f, 0.9f, 0.8f, 0.7f, 0.6f, 0.5f};
  SamplingOptions o{.temperature = 1.0f, .seed = 7};
  Sampler whole(o);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 200; ++i) tokens.push_back(whole.sample(logits));
  // A sampler that starts at token 137 (a resumed request) continues with the same tokens.
  Sampler resumed(o);
  resumed.seek(137);
  for (int i = 137; i < 200; ++i) EXPECT_EQ(resumed.sample(logits), tokens[i]) << "token " << i;
  // Another seed gives another sequence.
  Sampler other({.temperature = 1.0f, .seed = 8});
  int same = 0;
  for (int i = 0; i < 200; ++i) same += other.sample(logits) == tokens[i];
  EXPECT_LT(same, 100);  // 6 near-equal choices: about 1/6 agree by chance
}

TEST(Sampling, CounterUniformIsUniform) {
  // 16 buckets over 64k draws of one seed and of one index across seeds: each bucket expects
  // 4096; a chi-square over 15 degrees of freedom above 50 has probability < 1e-5.
  for (bool vary_seed : {false, true}) {
    std::vector<double> buckets(16, 0.0);
    for (uint64_t i = 0; i < 65536; ++i) {
      const double u = vary_seed ? counter_uniform(i, 3) : counter_uniform(3, i);
      ASSERT_GE(u, 0.0);
      ASSERT_LT(u, 1.0);
      buckets[static_cast<size_t>(u * 16)] += 1.0;
    }
    double chi2 = 0.0;
    for (double b : buckets) chi2 += (b - 4096.0) * (b - 4096.0) / 4096.0;
    EXPECT_LT(chi2, 50.0) << (vary_seed ? "across seeds" : "across indices");
  }
}

}  // namespace
}  // namespace v4
