// Sampling filters and determinism.
#include "model/sampling/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
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

namespace v4 {
namespace {

// The row's best n tokens in sampling's order, as a forward's top_candidates returns them.
void best_of(const std::vector<float>& logits, size_t n, std::vector<int32_t>& ids,
             std::vector<float>& values) {
  ids.resize(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(),
                   [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  ids.resize(n);
  values.clear();
  for (int32_t id : ids) values.push_back(logits[static_cast<size_t>(id)]);
}

// sample_ranked over the best tokens takes what sample() takes over the whole row, draw for
// draw: greedy (ties to the lower id) and top-k sampling with top-p, min-p and temperatures.
TEST(Sampling, RankedCandidatesSampleWhatTheWholeRowSamples) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> grid(-40, 40);
  const SamplingOptions cases[] = {
      {.temperature = 0.0f},
      {.temperature = 1.0f, .top_k = 1, .seed = 3},
      {.temperature = 0.7f, .top_k = 20, .seed = 4},
      {.temperature = 1.3f, .top_p = 0.8f, .top_k = 64, .seed = 5},
      {.temperature = 1.0f, .top_k = 40, .min_p = 0.05f, .seed = 6},
  };
  for (const SamplingOptions& o : cases) {
    Sampler whole(o), ranked(o);
    const size_t need = std::max(1, o.top_k);
    ASSERT_TRUE(ranked.samples_from_best(need));
    ASSERT_FALSE(ranked.samples_from_best(need - 1));
    std::vector<int32_t> ids;
    std::vector<float> values;
    for (int step = 0; step < 200; ++step) {
      std::vector<float> logits(500);
      for (float& v : logits) v = static_cast<float>(grid(rng)) / 10.0f;  // many ties
      best_of(logits, need, ids, values);
      ASSERT_EQ(ranked.sample_ranked(ids, values), whole.sample(logits))
          << "temperature " << o.temperature << " top_k " << o.top_k << " step " << step;
    }
  }
  // Sampling with no top-k needs the whole row.
  EXPECT_FALSE(Sampler({.temperature = 1.0f}).samples_from_best(64));
  EXPECT_FALSE(Sampler({.temperature = 1.0f, .top_k = 65}).samples_from_best(64));
}

}  // namespace
}  // namespace v4
