// Routed experts split between device and host memory (ExpertTiers, TieredExpertDispatcher)
// against the forward with every expert in one memory. With a CPU backend on both sides the
// logits are bit-identical: the same kernels on the same rows, only where each row ran and the
// dispatch plan differ. On the emulated device, the hot experts take the device kernels and
// the cold ones the CPU's, so the logits stay within the device forward's tolerance of the CPU
// (device_forward_test states it). Also the hot-set choice, the upload's bytes and bad tiers.
#include <gtest/gtest.h>

#include <algorithm>

#include "model/backend/cpu_backend.h"
#include "model/backend/device/backend_factory.h"
#include "model/backend/device/emulated_backend.h"
#include "model/synthetic/synthetic_model.h"
#include "model/v4/device_weights.h"
#include "model/v4/expert_tiers.h"
#include "model/v4/tiered_expert_dispatcher.h"
#include "model/v4/v4_forward.h"
#include "model/v4/v4_forward_model.h"
#include "tests/unit/model/v4/forward_comparison.h"

namespace v4 {
namespace {

using forward_comparison::kOther;
using forward_comparison::kPrompt;
using forward_comparison::tiny_model;

// Logits of the prompt's positions (one prefill), then of three decode steps.
std::vector<float> run(V4Forward& forward, const V4Config& c) {
  return forward_comparison::run(forward, c, kPrompt.size());
}

// Layer l keeps every expert (l % 3 == 0), none (1) or the even ones (2) on the device.
ExpertTiers mixed_tiers(const V4Config& c) {
  ExpertTiers t;
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    std::vector<int32_t> hot;
    for (uint32_t e = 0; e < c.n_expert; ++e)
      if (l % 3 == 0 || (l % 3 == 2 && e % 2 == 0)) hot.push_back(static_cast<int32_t>(e));
    t.hot.push_back(std::move(hot));
  }
  return t;
}

class TieredExperts : public ::testing::TestWithParam<Recipe> {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<V4Model>> m = load_v4_model(tiny_model(GetParam()));
    ASSERT_TRUE(m) << m.message();
    model_ = std::move(*m);
    tiers_ = mixed_tiers(config());
  }
  const V4Config& config() const { return model_->weights.config; }
  std::unique_ptr<V4Model> model_;
  ExpertTiers tiers_;
};

TEST_P(TieredExperts, OnTheCpuLogitsAreBitIdenticalToOneMemory) {
  CpuBackend device(2), host(1);
  Result<std::unique_ptr<DeviceWeights>> resident =
      DeviceWeights::upload(model_->weights, device, {}, {}, &tiers_);
  ASSERT_TRUE(resident) << resident.message();
  Result<std::unique_ptr<TieredExpertDispatcher>> tiered =
      TieredExpertDispatcher::create(device, host, model_->weights, tiers_);
  ASSERT_TRUE(tiered) << tiered.message();
  ForwardLimits limits;  // steps of up to the prompt: the dispatcher's buffers are sized for it
  limits.max_tokens = static_cast<int64_t>(kPrompt.size());
  V4Forward forward(resident.value()->weights(), device, tiered->get(), limits);
  V4Forward reference(model_->weights, device);
  const std::vector<float> want = run(reference, config());
  EXPECT_EQ(run(forward, config()), want);
  EXPECT_GT((*tiered)->hot_pairs(), 0u);
  EXPECT_GT((*tiered)->cold_pairs(), 0u);
  // What the device fit check counts for the dispatcher is what it keeps: sized when the forward
  // was made, nothing grew.
  EXPECT_EQ((*tiered)->buffer_bytes(),
            TieredExpertDispatcher::bytes_for(limits.max_tokens, config().n_expert_used,
                                              config().n_embd, config().n_expert));
  // The cold experts' bytes stay on the host.
  const LayerWeights& l1 = model_->weights.layers[1];
  const uint64_t per_expert =
      l1.gate_exps.mat_bytes + l1.up_exps.mat_bytes + l1.down_exps.mat_bytes;
  const uint64_t full = resident_weight_bytes(model_->weights);
  EXPECT_EQ(resident.value()->bytes(), resident_weight_bytes(model_->weights, &tiers_));
  EXPECT_LE(resident.value()->bytes() + tiers_.cold_count(config().n_expert) * per_expert, full);
  EXPECT_GT(resident.value()->bytes() + tiers_.cold_count(config().n_expert) * per_expert,
            full - 256 * 9 * uint64_t{config().n_layer});  // alignment only
}

TEST_P(TieredExperts, LogitsDoNotDependOnTheOtherSequencesOfAStep) {
  CpuBackend device(2), host(1);
  Result<std::unique_ptr<DeviceWeights>> resident =
      DeviceWeights::upload(model_->weights, device, {}, {}, &tiers_);
  ASSERT_TRUE(resident) << resident.message();
  auto tiered = TieredExpertDispatcher::create(device, host, model_->weights, tiers_);
  ASSERT_TRUE(tiered) << tiered.message();
  V4Forward forward(resident.value()->weights(), device, tiered->get());
  ContiguousKvState alone(config(), device), a(config(), device), b(config(), device);
  SequenceInput in{&alone, kPrompt, true};
  Result<ForwardOutput> solo = forward.forward({&in, 1});
  ASSERT_TRUE(solo) << solo.message();
  SequenceInput both[2] = {{&b, kOther, true}, {&a, kPrompt, true}};
  Result<ForwardOutput> batched = forward.forward(both);
  ASSERT_TRUE(batched) << batched.message();
  const size_t vocab = config().n_vocab;
  const std::vector<float> mine(batched->logits.begin() + kOther.size() * vocab,
                                batched->logits.end());
  EXPECT_EQ(mine, solo->logits);
}

// Hot experts on `device`, cold ones on the CPU, against every expert on `device`.
void expect_tiers_within_device_tolerance(Backend& device, const V4Model& model,
                                          const ExpertTiers& tiers, Recipe recipe) {
  const V4Config& c = model.weights.config;
  CpuBackend host(2);
  Result<std::unique_ptr<DeviceWeights>> whole = DeviceWeights::upload(model.weights, device);
  Result<std::unique_ptr<DeviceWeights>> resident =
      DeviceWeights::upload(model.weights, device, {}, {}, &tiers);
  ASSERT_TRUE(whole && resident);
  auto tiered = TieredExpertDispatcher::create(device, host, model.weights, tiers);
  ASSERT_TRUE(tiered) << tiered.message();
  V4Forward all_device(whole.value()->weights(), device);
  V4Forward split(resident.value()->weights(), device, tiered->get());
  forward_comparison::expect_within_device_tolerance(
      run(all_device, c), run(split, c), c.n_vocab, recipe,
      "tiered experts " + std::string(recipe_name(recipe)));
}

TEST_P(TieredExperts, OnTheEmulatedDeviceWithinTheDeviceTolerance) {
  device::EmulatedDeviceBackend device{kernels::HostExec{}};
  expect_tiers_within_device_tolerance(device, *model_, tiers_, GetParam());
}

TEST_P(TieredExperts, OnTheGpuWithinTheDeviceTolerance) {
  Result<std::unique_ptr<Backend>> device = device::make_backend({DeviceKind::kCuda, 0}, 1);
  if (!device)
    GTEST_SKIP() << "no usable GPU, CUDA tiered-experts test skipped: " << device.message();
  expect_tiers_within_device_tolerance(**device, *model_, tiers_, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Recipes, TieredExperts, ::testing::Values(Recipe::kF32, Recipe::kDs4Q2),
                         [](const ::testing::TestParamInfo<Recipe>& info) {
                           std::string name(recipe_name(info.param));
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(ExpertTiersTest, HotSetsTakeTheBusiestExpertsUpToTheCoverage) {
  const std::vector<std::vector<uint64_t>> load = {{5, 0, 9, 1}, {0, 0, 0, 0}, {2, 2, 2, 2}};
  ExpertTiers t = hot_experts(load, 0.9);
  EXPECT_EQ(t.hot[0], (std::vector<int32_t>{0, 2}));  // 9 + 5 of 15 reach 90%
  EXPECT_TRUE(t.hot[1].empty());                      // nothing selected
  EXPECT_EQ(t.hot[2], (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(hot_experts(load, 1.0).hot[0], (std::vector<int32_t>{0, 2, 3}));
  EXPECT_EQ(hot_experts(load, 0.5).hot[2], (std::vector<int32_t>{0, 1}));  // ties: lower ids
  EXPECT_EQ(t.slots(0, 4), (std::vector<int32_t>{0, -1, 1, -1}));
  EXPECT_TRUE(t.all_hot(2, 4));
  EXPECT_TRUE(t.all_hot(7, 4));  // past the listed layers
  EXPECT_EQ(t.cold_count(4), 2u + 4u);
  EXPECT_TRUE(t.validate(3, 4));
}

TEST(ExpertTiersTest, BadTiersAreRefused) {
  ExpertTiers t;
  t.hot = {{0, 4}};
  EXPECT_FALSE(t.validate(1, 4));  // id out of range
  t.hot = {{2, 1}};
  EXPECT_FALSE(t.validate(1, 4));  // not ascending
  t.hot = {{1}, {1}};
  EXPECT_FALSE(t.validate(1, 4));  // more layers than the model
  Result<std::unique_ptr<V4Model>> m = load_v4_model(tiny_model(Recipe::kF32));
  ASSERT_TRUE(m) << m.message();
  CpuBackend cpu(1);
  ExpertTiers bad;
  bad.hot = {{0, static_cast<int32_t>((*m)->weights.config.n_expert)}};
  Result<std::unique_ptr<DeviceWeights>> up =
      DeviceWeights::upload((*m)->weights, cpu, {}, {}, &bad);
  ASSERT_FALSE(up);
  EXPECT_NE(up.message().find("hot expert ids"), std::string::npos) << up.message();
  EXPECT_FALSE(TieredExpertDispatcher::create(cpu, cpu, (*m)->weights, bad));
}

}  // namespace
}  // namespace v4
