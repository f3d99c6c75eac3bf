// The experts-per-token override (community top-k 4 variants, spec §5.7) on the tiny synthetic
// model: 6 layers, 16 experts, top-k 6 in the file, hash routing on layers 0..2.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>

#include "model/backend/cpu_backend.h"
#include "model/synthetic/synthetic_model.h"
#include "model/v4/moe.h"
#include "model/v4/v4_config.h"
#include "model/v4/v4_forward.h"
#include "model/v4/v4_forward_model.h"
#include "model/v4/weight_traffic.h"
#include "tests/unit/common/test_models.h"

namespace v4 {
namespace {

using test_support::tokenizer_json;

// The same file v4_forward_test writes (vocabulary cut to 4096 to keep the head cheap).
std::string tiny_model() {
  SyntheticModelOptions o;
  o.config = *synthetic_preset("tiny");
  o.config.n_vocab = 4096;
  o.recipe = Recipe::kF32;
  o.tokenizer_json = tokenizer_json();
  return test_support::cached_test_model("tiny-v4096-f32.gguf", o);
}

std::unique_ptr<V4Model> load(std::optional<uint32_t> experts_per_token) {
  V4ConfigOverrides overrides;
  overrides.experts_per_token = experts_per_token;
  Result<std::unique_ptr<V4Model>> m = load_v4_model(tiny_model(), "", overrides);
  EXPECT_TRUE(m) << m.message();
  return m ? std::move(*m) : nullptr;
}

const std::vector<int32_t> kTokens = {0, 1043, 77, 2048, 12, 5, 300, 41, 7, 99};

// Logits of the last token after decoding kTokens one at a time; `routed` gets the (layer,
// expert) pairs read by the last step, counted from the matrices the forward really touched.
std::vector<float> last_logits(const V4Model& model, uint64_t* routed) {
  CpuBackend cpu(2);
  WeightTrafficRecorder recorder(cpu);
  V4Forward forward(model.weights, recorder);
  ContiguousKvState state(model.weights.config, cpu);
  std::vector<float> logits;
  for (const int32_t& token : kTokens) {
    recorder.take_ranges();
    SequenceInput in{&state, std::span<const int32_t>(&token, 1)};
    Result<ForwardOutput> out = forward.forward({&in, 1});
    EXPECT_TRUE(out) << out.message();
    if (!out) return {};
    logits = out->logits;
    *routed =
        summarize_step_traffic(model.weights, recorder.take_ranges(), in.tokens).routed_experts;
  }
  return logits;
}

class ExpertsOverrideTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(tokenizer_json())) {
      GTEST_SKIP() << "tokenizer.json not found at " << tokenizer_json();
    }
  }
};

TEST_F(ExpertsOverrideTest, TopK4SelectsFourExpertsOnRoutedAndHashLayers) {
  std::unique_ptr<V4Model> model = load(4);
  ASSERT_TRUE(model);
  const V4Weights& w = model->weights;
  ASSERT_EQ(w.config.n_expert_used, 4u);
  ASSERT_EQ(w.layers[0].tid2eid_width, 6u);  // the file's table stays 6 wide

  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> router_logits(w.config.n_expert);
  for (float& v : router_logits) v = normal(rng);

  // Biased top-k layer (3): four distinct experts whose weights renormalise to the scale.
  const ExpertChoice routed = select_experts(w.config, w.layers[3], router_logits.data(), 77);
  ASSERT_EQ(routed.experts.size(), 4u);
  EXPECT_EQ(std::set<int32_t>(routed.experts.begin(), routed.experts.end()).size(), 4u);
  float sum = 0.0f;
  for (float x : routed.weights) sum += x;
  // Four float additions of values ≤ 1.5: a few ulps.
  EXPECT_NEAR(sum, w.config.expert_weights_scale, 1e-5f);

  // Hash layer (0): the first four ids of the token's six-wide table row.
  const ExpertChoice hashed = select_experts(w.config, w.layers[0], router_logits.data(), 77);
  const int32_t* row = &w.layers[0].tid2eid[77 * w.layers[0].tid2eid_width];
  EXPECT_EQ(hashed.experts, std::vector<int32_t>(row, row + 4));

  // In a real decode step every layer reads exactly four routed experts (the synthetic hash
  // rows hold distinct ids, so no layer reads fewer).
  uint64_t read = 0;
  last_logits(*model, &read);
  EXPECT_EQ(read, 4u * w.config.n_layer);
}

TEST_F(ExpertsOverrideTest, TopK4ChangesLogitsVersusTheFilesSix) {
  std::unique_ptr<V4Model> six = load(std::nullopt);
  std::unique_ptr<V4Model> four = load(4);
  ASSERT_TRUE(six && four);
  ASSERT_EQ(six->weights.config.n_expert_used, 6u);
  uint64_t read_six = 0, read_four = 0;
  const std::vector<float> a = last_logits(*six, &read_six);
  const std::vector<float> b = last_logits(*four, &read_four);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(read_six, 6u * six->weights.config.n_layer);
  EXPECT_EQ(read_four, 4u * four->weights.config.n_layer);
  float max_diff = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(std::isfinite(b[i]));
    max_diff = std::max(max_diff, std::abs(a[i] - b[i]));
  }
  // Dropping two of six experts in every layer changes the network, not the rounding; the
  // forward is deterministic, so only the override can move the logits, and 1e-2 is well below
  // the change two missing experts cause yet far above float noise.
  EXPECT_GT(max_diff, 1e-2f);
}

TEST_F(ExpertsOverrideTest, OutOfRangeValuesAreRejectedWithTheirRange) {
  V4Config config = *synthetic_preset("tiny");
  Status zero = apply_config_overrides(config, {0u});
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.message(), "experts per token 0 is outside 1..16 (the model's expert_count)");
  Status too_many = apply_config_overrides(config, {17u});
  ASSERT_FALSE(too_many);
  EXPECT_EQ(too_many.message(), "experts per token 17 is outside 1..16 (the model's expert_count)");
  EXPECT_EQ(config.n_expert_used, 6u);  // a rejected override leaves the config alone
  ASSERT_TRUE(apply_config_overrides(config, {16u}));
  EXPECT_EQ(config.n_expert_used, 16u);

  V4ConfigOverrides overrides;
  overrides.experts_per_token = 17;
  Result<std::unique_ptr<V4Model>> m = load_v4_model(tiny_model(), "", overrides);
  ASSERT_FALSE(m);
  EXPECT_NE(m.message().find("experts per token 17 is outside 1..16"), std::string::npos)
      << m.message();
}

}  // namespace
}  // namespace v4
