// The whole V4 forward on the device backends against the CPU forward, on the tiny synthetic
// model in two recipes (f32 and ds4-q2, whose routed experts are IQ2_XXS/Q2_K and dense weights
// Q8_0): top-1 agreement and the largest logit difference per position, and on the device
// itself the invariants of the design — a token's logits do not depend on the prefill chunking
// or on which other sequences share a step. "emulated" runs the device kernels on the host; the
// "cuda" variants skip, saying why, where no GPU is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>

#include "model/backend/cpu_backend.h"
#include "model/backend/device/backend_factory.h"
#include "model/backend/device/emulated_backend.h"
#include "model/backend/device/scratch_bound.h"
#include "model/synthetic/synthetic_model.h"
#include "model/v4/device_weights.h"
#include "model/v4/forward_workspace.h"
#include "model/v4/step_shapes.h"
#include "model/v4/v4_forward.h"
#include "model/v4/v4_forward_model.h"
#include "tests/unit/model/v4/forward_comparison.h"

namespace v4 {
namespace {

using forward_comparison::kOther;
using forward_comparison::kPrompt;
using forward_comparison::run;
using forward_comparison::tiny_model;

class DeviceForward : public ::testing::TestWithParam<std::tuple<std::string, Recipe>> {
 protected:
  void SetUp() override {
    const auto& [device, recipe] = GetParam();
    if (device == "emulated") {
      backend_ = std::make_unique<device::EmulatedDeviceBackend>(kernels::HostExec{});
    } else {
      Result<std::unique_ptr<Backend>> be = device::make_backend({DeviceKind::kCuda, 0}, 1);
      if (!be) GTEST_SKIP() << "no usable GPU, CUDA forward test skipped: " << be.message();
      backend_ = std::move(*be);
    }
    Result<std::unique_ptr<V4Model>> m = load_v4_model(tiny_model(recipe));
    ASSERT_TRUE(m) << m.message();
    model_ = std::move(*m);
    Result<std::unique_ptr<DeviceWeights>> w = DeviceWeights::upload(model_->weights, *backend_);
    ASSERT_TRUE(w) << w.message();
    resident_ = std::move(*w);
  }
  const V4Config& config() const { return model_->weights.config; }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<V4Model> model_;
  std::unique_ptr<DeviceWeights> resident_;
};

TEST_P(DeviceForward, MatchesTheCpuForward) {
  CpuBackend cpu(2);
  V4Forward reference(model_->weights, cpu);
  V4Forward forward(resident_->weights(), *backend_);
  const std::vector<float> want = run(reference, config(), kPrompt.size());
  const std::vector<float> got = run(forward, config(), kPrompt.size());
  const Recipe recipe = std::get<1>(GetParam());
  forward_comparison::expect_within_device_tolerance(
      want, got, config().n_vocab, recipe,
      std::get<0>(GetParam()) + " " + std::string(recipe_name(recipe)));
}

TEST_P(DeviceForward, LogitsDoNotDependOnPrefillChunking) {
  V4Forward forward(resident_->weights(), *backend_);
  const std::vector<float> whole = run(forward, config(), kPrompt.size());
  EXPECT_EQ(run(forward, config(), 1), whole);
  EXPECT_EQ(run(forward, config(), 5), whole);
}

// A prompt of 48 tokens at once runs its quantized products on the tensor cores (ds4-q2: Q8_0
// dense weights from 32 tokens on, IQ2_XXS/Q2_K experts from 4 rows per expert on average); in
// chunks of 8 it runs the warp kernels decode uses. The logits must be the same bits.
TEST_P(DeviceForward, PrefillOnTheTensorCoresGivesTheDecodeKernelsLogits) {
  if (std::get<1>(GetParam()) == Recipe::kF32) GTEST_SKIP() << "f32 weights have no int8 units";
  V4Forward forward(resident_->weights(), *backend_);
  std::vector<int32_t> prompt;
  for (int32_t i = 0; i < 48; ++i) prompt.push_back((i * 7919 + 13) % 4000);
  auto logits = [&](size_t chunk) {
    ContiguousKvState state(config(), *backend_);
    std::vector<float> all;
    for (size_t first = 0; first < prompt.size(); first += chunk) {
      const size_t n = std::min(chunk, prompt.size() - first);
      SequenceInput in{&state, std::span<const int32_t>(prompt).subspan(first, n), true};
      Result<ForwardOutput> out = forward.forward({&in, 1});
      EXPECT_TRUE(out) << out.message();
      if (!out) return all;
      all.insert(all.end(), out->logits.begin(), out->logits.end());
    }
    return all;
  };
  const std::vector<float> whole = logits(prompt.size());
  ASSERT_EQ(whole.size(), prompt.size() * config().n_vocab);
  EXPECT_EQ(logits(8), whole);
}

// The upload rewrites the Q8_0 matrices (ds4-q2: the dense weights) in the split layout where
// their rows allow it (tiny: q_a's 256-value rows do, q_b's 128-value rows of 136 bytes do not,
// so the forward reads both layouts); a device told not to keeps the GGUF layout. The logits
// are the same bits.
TEST_P(DeviceForward, Q8_0WeightsSplitOnUploadGiveTheGgufLayoutsLogits) {
  if (std::get<1>(GetParam()) == Recipe::kF32) GTEST_SKIP() << "f32 weights have no Q8_0";
  device::DeviceSpec spec{DeviceKind::kCuda, 0};
  spec.emulated = std::get<0>(GetParam()) == "emulated";
  spec.ops.split_q8_0_weights = false;
  Result<std::unique_ptr<Backend>> gguf_backend = device::make_backend(spec, 1);
  ASSERT_TRUE(gguf_backend) << gguf_backend.message();
  Result<std::unique_ptr<DeviceWeights>> gguf =
      DeviceWeights::upload(model_->weights, **gguf_backend);
  ASSERT_TRUE(gguf) << gguf.message();
  const V4Weights& split = resident_->weights();
  for (const WeightMatrix* m : {&split.layers[0].q_a, &split.output})
    EXPECT_TRUE(m->view.type == GgmlType::Q8_0 && m->view.q8_0_split);
  EXPECT_TRUE(split.layers[0].q_b.view.type == GgmlType::Q8_0 &&
              !split.layers[0].q_b.view.q8_0_split);
  EXPECT_FALSE((*gguf)->weights().layers[0].q_a.view.q8_0_split);
  EXPECT_FALSE(model_->weights.layers[0].q_a.view.q8_0_split) << "the host weights stay GGUF";
  V4Forward split_forward(resident_->weights(), *backend_);
  V4Forward gguf_forward((*gguf)->weights(), **gguf_backend);
  EXPECT_EQ(run(split_forward, config(), kPrompt.size()),
            run(gguf_forward, config(), kPrompt.size()));
}

TEST_P(DeviceForward, LogitsDoNotDependOnTheOtherSequencesOfAStep) {
  V4Forward forward(resident_->weights(), *backend_);
  ContiguousKvState alone(config(), *backend_), a(config(), *backend_), b(config(), *backend_);
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

// A 48-token prompt in one step, then decode steps of one token, which the forward records (their
// scratch is apart: a step of one row).
void prompt_then_decode(V4Forward& forward, ContiguousKvState& state) {
  std::vector<int32_t> prompt;
  for (int32_t i = 0; i < 48; ++i) prompt.push_back((i * 7919 + 13) % 4000);
  SequenceInput in{&state, prompt, true};
  ASSERT_TRUE(forward.forward({&in, 1}));
  for (int32_t token : {5, 9, 77}) {
    const int32_t one[1] = {token};
    SequenceInput next{&state, one, true};
    ASSERT_TRUE(forward.forward({&next, 1}));
  }
}

// The steps of prompt_then_decode, as the commands reserve scratch for them.
ScratchShapes prompt_then_decode_shapes(const V4Weights& w) {
  return scratch_shapes(w, 48, 1, 48 + 3, int64_t{w.config.n_expert_used}, KvStorage::kF32);
}

// The bound the fit check counts for the kernels' scratch (device::scratch_need over the step
// shapes), summed over the backend's two scratches.
uint64_t scratch_bound(const ScratchShapes& shapes) {
  return device::scratch_need(shapes.steps, {}).total() +
         device::scratch_need(shapes.recorded_steps, {}).total();
}

// Unreserved, the scratch grows to what the ops ask for, and the bound holds it. It is met within
// the slack of what it cannot know (which layers and ops of a step ask for the most). These steps
// return whole rows of logits, so the bound without the head's selection (top_logits and
// draw_rows, whose own bound their test checks) is the one they must come near.
TEST_P(DeviceForward, ScratchNeedBoundsWhatTheOpsAskFor) {
  V4Forward forward(resident_->weights(), *backend_);
  ContiguousKvState state(config(), *backend_);
  prompt_then_decode(forward, state);
  ScratchShapes shapes = prompt_then_decode_shapes(resident_->weights());
  const uint64_t bound = scratch_bound(shapes);
  const uint64_t asked = backend_->scratch_requested_bytes();
  EXPECT_LE(asked, bound);
  EXPECT_LE(backend_->scratch_bytes(), 2 * bound);  // a slot grows at least twofold
  shapes.steps.selections.clear();
  shapes.recorded_steps.selections.clear();
  const uint64_t unselected = scratch_bound(shapes);
  EXPECT_GE(asked, unselected - unselected / 10)
      << "the bound is loose: " << asked << " of " << unselected;
}

// Reserved to the bound before the first step (as the commands do, apps/device_setup.cpp), the
// scratch holds every step slot by slot: no slot grows or moves, so the recordings stay valid.
// The same for the expert dispatcher's buffers, sized when the forward is made for its steps of
// up to 48 tokens (LocalExpertDispatcher::bytes_for, what the fit check counts).
TEST_P(DeviceForward, ReservedScratchAndDispatchBuffersNeverGrow) {
  const V4Weights& w = resident_->weights();
  const ScratchShapes shapes = prompt_then_decode_shapes(w);
  ASSERT_TRUE(backend_->reserve_scratch(shapes.steps, shapes.recorded_steps));
  const uint64_t reserved = scratch_bound(shapes);
  EXPECT_EQ(backend_->scratch_bytes(), reserved);
  const uint64_t generation = backend_->scratch_generation();
  LocalExpertDispatcher experts(*backend_);
  ForwardLimits limits;
  limits.max_tokens = 48;
  V4Forward forward(w, *backend_, &experts, limits);
  const uint64_t dispatch = LocalExpertDispatcher::bytes_for(48, config().n_expert_used,
                                                             config().n_embd, config().n_expert);
  EXPECT_EQ(experts.buffer_bytes(), dispatch);
  const std::optional<uint64_t> buffers = experts.graph_generation();
  ContiguousKvState state(config(), *backend_);
  prompt_then_decode(forward, state);
  EXPECT_EQ(backend_->scratch_bytes(), reserved);
  EXPECT_EQ(backend_->scratch_generation(), generation);
  EXPECT_EQ(experts.buffer_bytes(), dispatch);
  EXPECT_EQ(experts.graph_generation(), buffers);
}

std::string name(const ::testing::TestParamInfo<DeviceForward::ParamType>& info) {
  std::string recipe(recipe_name(std::get<1>(info.param)));
  std::replace(recipe.begin(), recipe.end(), '-', '_');
  return std::get<0>(info.param) + "_" + recipe;
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceForward,
                         ::testing::Combine(::testing::Values(std::string("emulated"),
                                                              std::string("cuda")),
                                            ::testing::Values(Recipe::kF32, Recipe::kDs4Q2)),
                         name);

// What a server reserves for the forward's step workspace before the weights go to the device
// (ForwardWorkspace::bytes_for) is what the workspace then allocates for steps of that size.
TEST(ForwardWorkspace, ReservedBytesAreWhatTheWorkspaceAllocates) {
  Result<V4Config> config = synthetic_preset("tiny");
  ASSERT_TRUE(config) << config.message();
  device::EmulatedDeviceBackend backend(kernels::HostExec{});
  uint64_t previous = 0;
  for (int64_t tokens : {1, 63, 64, 65, 300}) {
    ForwardWorkspace ws(backend);
    ws.ensure(*config, tokens);
    const uint64_t reserved = ForwardWorkspace::bytes_for(*config, tokens);
    EXPECT_EQ(reserved, ws.bytes()) << tokens << " tokens";
    EXPECT_GT(reserved, previous) << tokens << " tokens";
    previous = reserved;
  }
}

}  // namespace
}  // namespace v4
