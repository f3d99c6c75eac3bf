// Expert choice of spec §3.5 on hand-made router logits: sqrt-softplus probabilities, the bias
// only ordering experts, hash routing from the token's tid2eid row, weights normalised and scaled.
#include "model/v4/moe.h"

#include <gtest/gtest.h>

#include <cmath>

#include "model/v4/v4_weights.h"

namespace v4 {
namespace {

V4Config config() {
  V4Config c;
  c.n_expert = 8;
  c.n_expert_used = 3;
  c.expert_weights_scale = 1.5f;
  return c;
}

TEST(Moe, SqrtSoftplus) {
  for (float x : {-30.0f, -3.0f, 0.0f, 2.0f, 25.0f}) {
    EXPECT_NEAR(sqrt_softplus(x), std::sqrt(std::log1p(std::exp(double(x)))),
                1e-6 * (1 + x * (x > 0)));
  }
}

TEST(Moe, BiasOrdersExpertsButDoesNotWeightThem) {
  const V4Config c = config();
  LayerWeights w;
  w.exp_probs_b = {0, 0, 0, 0, 0, 0, 0, 10.0f};  // expert 7 always chosen
  const float logits[8] = {3.0f, -1.0f, 2.0f, 0.5f, 2.5f, -4.0f, 0.0f, -6.0f};
  const ExpertChoice e = select_experts(c, w, logits, 123);
  ASSERT_EQ(e.experts, (std::vector<int32_t>{7, 0, 4}));
  double p[3], sum = 0;
  for (int i = 0; i < 3; ++i)
    sum += p[i] = std::sqrt(std::log1p(std::exp(double(logits[e.experts[i]]))));
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(e.weights[i], 1.5 * p[i] / sum, 1e-6);
}

TEST(Moe, HashRoutingUsesTheTokensTableRow) {
  const V4Config c = config();
  LayerWeights w;
  w.tid2eid_width = 4;  // wider than expert_used_count: the first 3 ids are used
  w.tid2eid = std::vector<int32_t>(4 * 10, 0);
  const int32_t row[4] = {5, 1, 6, 2};
  std::copy(row, row + 4, w.tid2eid.host().begin() + 4 * 9);
  const float logits[8] = {9, 0, 0, 0, 0, 1, 2, 0};
  const ExpertChoice e = select_experts(c, w, logits, 9);
  EXPECT_EQ(e.experts, (std::vector<int32_t>{5, 1, 6}));
  float total = 0;
  for (float x : e.weights) total += x;
  EXPECT_NEAR(total, 1.5f, 1e-6);
}

}  // namespace
}  // namespace v4
