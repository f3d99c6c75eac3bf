// Shared by the tests that compare a whole V4 forward on two backends (device_forward_test,
// tiered_experts_test): the tiny models, a prompt and a second sequence, the logits of a
// prefill plus three decode steps, and the device tolerance against the CPU forward.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "model/synthetic/synthetic_model.h"
#include "model/v4/v4_forward.h"
#include "tests/unit/common/test_models.h"

namespace v4::forward_comparison {

// The tiny model in `recipe` (vocabulary cut to 4096), written once in the test models' folder
// (test_support::test_models_dir).
inline std::string tiny_model(Recipe recipe) {
  const std::string name = "tiny-v4096-" + std::string(recipe_name(recipe)) + ".gguf";
  SyntheticModelOptions o;
  o.config = *synthetic_preset("tiny");
  o.config.n_vocab = 4096;
  o.recipe = recipe;
  o.tokenizer_json = test_support::tokenizer_json();
  return test_support::cached_test_model(name, o);
}

inline const std::vector<int32_t> kPrompt = {0, 1043, 77, 2048, 12, 5, 300, 41, 7, 99, 4000, 3};
inline const std::vector<int32_t> kOther = {17, 2, 999, 31, 64};

// Logits of every prompt position (prefill in chunks of `chunk`), then of three decode steps.
inline std::vector<float> run(V4Forward& forward, const V4Config& c, size_t chunk) {
  ContiguousKvState state(c, forward.backend());
  std::vector<float> all;
  std::vector<int32_t> tokens = kPrompt;
  for (int32_t extra : {5, 1000, 42}) tokens.push_back(extra);
  for (size_t first = 0; first < tokens.size();) {
    const size_t n = first < kPrompt.size() ? std::min(chunk, kPrompt.size() - first) : 1;
    SequenceInput in{&state, std::span<const int32_t>(tokens).subspan(first, n), true};
    Result<ForwardOutput> out = forward.forward({&in, 1});
    EXPECT_TRUE(out) << out.message();
    if (!out) return {};
    all.insert(all.end(), out->logits.begin(), out->logits.end());
    first += n;
  }
  return all;
}

// `got` against `want` (logits of equal positions): the top-1 agreement and the largest logit
// difference, reported as "[ report ] label: ..." and held to the device tolerance of `recipe`.
inline void expect_within_device_tolerance(const std::vector<float>& want,
                                           const std::vector<float>& got, size_t vocab,
                                           Recipe recipe, const std::string& label) {
  ASSERT_EQ(got.size(), want.size());
  float worst = 0;
  size_t top1_agree = 0, near_ties = 0, positions = want.size() / vocab;
  for (size_t p = 0; p < positions; ++p) {
    const float* a = &want[p * vocab];
    const float* b = &got[p * vocab];
    float here = 0;
    for (size_t i = 0; i < vocab; ++i) here = std::max(here, std::fabs(a[i] - b[i]));
    worst = std::max(worst, here);
    const size_t ta = std::max_element(a, a + vocab) - a, tb = std::max_element(b, b + vocab) - b;
    top1_agree += ta == tb;
    // A different top-1 is only acceptable where the reference's own margin between the two
    // tokens is within this position's difference: a near-tie, not a wrong result.
    if (ta != tb) {
      EXPECT_LT(a[ta] - a[tb], 2 * here) << "position " << p;
      ++near_ties;
    }
  }
  std::printf("[ report ] %s: top-1 %zu/%zu (%zu near-ties), max |dlogit| %.3g\n", label.c_str(),
              top1_agree, positions, near_ties, worst);
  if (recipe == Recipe::kF32) {
    // Float weights take float activations: only the order of the dot products' sums differs
    // (lanes and a butterfly on the device, double lanes on the CPU), ~1e-6 measured.
    EXPECT_LT(worst, 1e-4f);
    EXPECT_EQ(top1_agree, positions);
  } else {
    // Quantized weights take Q8 activations, and a last-place difference upstream can move an
    // activation across a rounding boundary: on this random 6-layer model that is chaotic — the
    // CPU forward itself moves its logits (range ±4) by 0.04 when its embeddings are scaled by
    // 1 + 1.2e-7. 0.5 allows that amplified noise; a wrong code, scale or index moves logits by
    // units and breaks the top-1 of most positions.
    EXPECT_LT(worst, 0.5f);
    EXPECT_GE(top1_agree * 5, positions * 4);
  }
}

}  // namespace v4::forward_comparison
