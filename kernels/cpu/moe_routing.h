// Per-token MoE arithmetic of spec §3.5: the sqrt-softplus router probabilities, the choice of a
// token's experts (biased top-k, or the hash table row on hash-routed layers) with their weights,
// and the clamped SwiGLU of one expert's hidden row.
#pragma once

#include <cstdint>

namespace v4::kernels {

// Router probability p = sqrt(softplus(logit)).
float sqrt_softplus(float logit);

// How a layer picks experts. Exactly one of `bias` (n_expert floats: noaux_tc, the bias only
// orders experts) and `hash_row` (the token's tid2eid row of at least k ids) is set.
struct ExpertSelection {
  uint32_t n_expert = 0;
  uint32_t k = 0;              // experts per token
  float weights_scale = 1.0f;  // routed_scaling_factor
  bool normalize = true;       // weights p_e / Σ p over the chosen experts
};

// Chooses k experts from one token's n_expert router logits: experts[0..k) in selection order
// (descending biased score, ties to the lower id; or the hash row's order) and their weights.
// `probs` and `ids` are scratch of n_expert values each.
void select_experts_row(const ExpertSelection& sel, const float* logits, const float* bias,
                        const int32_t* hash_row, float* probs, int32_t* ids, int32_t* experts,
                        float* weights);

// Clamped SwiGLU in place on gate (spec §3.5): silu(min(g, limit)) · clamp(u, ±limit) · scale.
void swiglu_row(float* gate, const float* up, int64_t n, float limit, float scale);

}  // namespace v4::kernels
