// A GPU runs a launch's indices, and a team's threads within a phase, in no order and at once;
// the host executor visits them in the order it is given (kernels/device/host_exec.h). A kernel
// whose bits depend on that order reads what another thread or team of the same launch or phase
// writes: a race on a GPU, which no comparison with the CPU backend within a tolerance would
// catch. The oracle here is the same kernels visited the other way: the whole forward on the tiny
// model, a long prefill (its products on the tensor cores) and decode steps asking for logits,
// candidates with their normalizer and draws, must give the same bits in ascending and descending
// order.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/device/host_exec.h"
#include "model/backend/device/emulated_backend.h"
#include "model/synthetic/synthetic_model.h"
#include "model/v4/device_weights.h"
#include "model/v4/v4_forward.h"
#include "model/v4/v4_forward_model.h"
#include "tests/unit/model/v4/forward_comparison.h"

namespace v4 {
namespace {

using forward_comparison::kOther;
using forward_comparison::kPrompt;
using forward_comparison::tiny_model;
using kernels::HostExec;
using kernels::HostOrder;

// Every output of a run, in the order it was produced.
struct Outputs {
  std::vector<float> logits, candidate_logits, drawn_logits;
  std::vector<double> log_normalizer;
  std::vector<int32_t> candidate_ids, drawn_tokens;

  void add(const ForwardOutput& out) {
    logits.insert(logits.end(), out.logits.begin(), out.logits.end());
    candidate_logits.insert(candidate_logits.end(), out.candidate_logits.begin(),
                            out.candidate_logits.end());
    log_normalizer.insert(log_normalizer.end(), out.log_normalizer.begin(),
                          out.log_normalizer.end());
    drawn_logits.insert(drawn_logits.end(), out.drawn_logits.begin(), out.drawn_logits.end());
    candidate_ids.insert(candidate_ids.end(), out.candidate_ids.begin(), out.candidate_ids.end());
    drawn_tokens.insert(drawn_tokens.end(), out.drawn_tokens.begin(), out.drawn_tokens.end());
  }
};

// Three sequences: a 48-token prompt at once (ds4-q2: its products on the tensor cores) with
// every position's logits, kPrompt in chunks of 5 and kOther whole (each chunk its last logits);
// then four decode steps of all three, where one sequence wants its logits, one 8 candidates and
// their normalizer, one a draw (the kinds rotate), each fed the token the step chose for it.
Outputs run(const V4Model& model, HostOrder order) {
  Outputs all;
  device::EmulatedDeviceBackend backend{HostExec(order)};
  Result<std::unique_ptr<DeviceWeights>> resident = DeviceWeights::upload(model.weights, backend);
  EXPECT_TRUE(resident) << resident.message();
  if (!resident) return all;
  const V4Config& c = model.weights.config;
  V4Forward forward((*resident)->weights(), backend);
  std::vector<int32_t> long_prompt;
  for (int32_t i = 0; i < 48; ++i) long_prompt.push_back((i * 7919 + 13) % 4000);
  std::vector<std::unique_ptr<ContiguousKvState>> states;
  for (int i = 0; i < 3; ++i) states.push_back(std::make_unique<ContiguousKvState>(c, backend));
  auto step = [&](std::vector<SequenceInput> inputs) {
    Result<ForwardOutput> out = forward.forward(inputs);
    EXPECT_TRUE(out) << out.message();
    if (out) all.add(*out);
    return out;
  };
  step({SequenceInput{states[0].get(), long_prompt, true}});
  for (size_t first = 0; first < kPrompt.size(); first += 5) {
    const size_t n = std::min<size_t>(5, kPrompt.size() - first);
    step({SequenceInput{states[1].get(), std::span<const int32_t>(kPrompt).subspan(first, n)}});
  }
  step({SequenceInput{states[2].get(), kOther}});
  std::vector<int32_t> next = {long_prompt.back(), kPrompt.back(), kOther.back()};
  for (size_t s = 0; s < 4; ++s) {
    std::vector<SequenceInput> inputs;
    for (size_t i = 0; i < 3; ++i) {
      SequenceInput in{states[i].get(), std::span<const int32_t>(&next[i], 1)};
      const size_t kind = (i + s) % 3;
      if (kind == 1) {
        in.top_candidates = 8;
        in.candidate_logprobs = true;
      } else if (kind == 2) {
        in.draw = kernels::RowDrawParams{{0.8f, 0.9f, 0.02f}, 0, 0x5DEECE66Dull * (s + 1)};
      }
      inputs.push_back(in);
    }
    Result<ForwardOutput> out = step(inputs);
    if (!out) return all;
    for (size_t i = 0; i < 3; ++i) {
      const size_t kind = (i + s) % 3;
      if (kind == 0) {
        const float* row = out->logits.data() + out->first_row[i] * c.n_vocab;
        next[i] = static_cast<int32_t>(std::max_element(row, row + c.n_vocab) - row);
      } else if (kind == 1) {
        next[i] = out->candidate_ids[i * out->candidate_k];
      } else {
        next[i] = out->drawn_tokens[i];
      }
    }
  }
  return all;
}

class HostOrderForward : public ::testing::TestWithParam<Recipe> {};

TEST_P(HostOrderForward, EveryOutputIsTheSameInEitherOrder) {
  Result<std::unique_ptr<V4Model>> model = load_v4_model(tiny_model(GetParam()));
  ASSERT_TRUE(model) << model.message();
  const Outputs up = run(**model, HostOrder::kAscending);
  const Outputs down = run(**model, HostOrder::kDescending);
  const V4Config& c = (*model)->weights.config;
  // Rows of logits: the 48 prompt positions, kPrompt's 3 chunks, kOther, one per decode step.
  ASSERT_EQ(up.logits.size(), (48 + 3 + 1 + 4) * size_t{c.n_vocab});
  // One draw per decode step.
  ASSERT_EQ(std::count_if(up.drawn_tokens.begin(), up.drawn_tokens.end(),
                          [](int32_t t) { return t >= 0; }),
            4);
  EXPECT_EQ(up.logits, down.logits);
  EXPECT_EQ(up.candidate_ids, down.candidate_ids);
  EXPECT_EQ(up.candidate_logits, down.candidate_logits);
  EXPECT_EQ(up.log_normalizer, down.log_normalizer);
  EXPECT_EQ(up.drawn_tokens, down.drawn_tokens);
  EXPECT_EQ(up.drawn_logits, down.drawn_logits);
}

INSTANTIATE_TEST_SUITE_P(Recipes, HostOrderForward, ::testing::Values(Recipe::kF32, Recipe::kDs4Q2),
                         [](const ::testing::TestParamInfo<Recipe>& info) {
                           std::string name(recipe_name(info.param));
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace v4
