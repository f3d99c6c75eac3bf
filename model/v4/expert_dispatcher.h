// The seam between MoE routing and expert compute (spec §3.5). A dispatcher takes every token's
// chosen (expert, weight) pairs and returns the weighted sum of its routed experts' outputs. The
// single-rank LocalExpertDispatcher runs every expert on this rank's Backend; an expert-parallel
// one ships rows to the ranks that own the experts. Either way a token's sum is taken in
// selection order from per-(token, slot) rows, so results never depend on where an expert ran
// or on which other tokens shared the step.
#pragma once

#include <cstdint>
#include <vector>

#include "model/backend/backend.h"

namespace v4 {

struct RoutedTokens {
  const float* x = nullptr;          // [n][n_embd] ffn-normed inputs
  const int32_t* experts = nullptr;  // [n][k], selection order
  const float* weights = nullptr;    // [n][k]
  int64_t n_tokens = 0;
  uint32_t k = 0;
  int64_t n_embd = 0;
};

class ExpertDispatcher {
 public:
  virtual ~ExpertDispatcher() = default;

  // out[t] = Σ_{s<k} weights[t][s]·FFN_{experts[t][s]}(x[t]) ([n][n_embd]) for MoE layer `layer`
  // (the MTP block is layer n_layer).
  virtual void dispatch_combine(uint32_t layer, const ExpertFfnWeights& experts,
                                const RoutedTokens& tokens, float* out) = 0;
};

class LocalExpertDispatcher final : public ExpertDispatcher {
 public:
  explicit LocalExpertDispatcher(Backend& backend) : backend_(backend) {}

  void dispatch_combine(uint32_t layer, const ExpertFfnWeights& experts, const RoutedTokens& tokens,
                        float* out) override;

 private:
  Backend& backend_;
  // Index bookkeeping, reused across steps: rows grouped by expert, each row's source token,
  // each (token, slot)'s row.
  std::vector<int64_t> count_, source_token_, slot_row_;
  std::vector<float> row_scale_, gathered_, expert_out_;
  std::vector<ExpertGroup> groups_;
};

}  // namespace v4
