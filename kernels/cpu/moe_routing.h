// Per-token MoE arithmetic of spec §3.5: the sqrt-softplus router probabilities, the choice of a
// token's experts (biased top-k, or the hash table row on hash-routed layers) with their weights,
// and the clamped SwiGLU of one expert's hidden row. Shared by host and device code (V4_HD).
#pragma once

#include <math.h>

#include <cstdint>

#include "core/hd.h"

namespace v4::kernels {

// Router probability p = sqrt(softplus(logit)).
V4_HD inline float sqrt_softplus(float x) {
  const float sp = x > 20.0f ? x : x < -20.0f ? expf(x) : log1pf(expf(x));
  return sqrtf(sp);
}

// How a layer picks experts. Exactly one of `bias` (n_expert floats: noaux_tc, the bias only
// orders experts) and `hash_row` (the token's tid2eid row of at least k ids) is set.
struct ExpertSelection {
  uint32_t n_expert = 0;
  uint32_t k = 0;              // experts per token
  float weights_scale = 1.0f;  // routed_scaling_factor
  bool normalize = true;       // weights p_e / Σ p over the chosen experts
};

// The k best experts by biased score p[e] + bias[e] (descending, ties to the lower id), in that
// order: each pick is the best expert ranked below the previous one — the first k of a full
// sort. The previous pick's score stays in a register, so a GPU thread's loads never wait on
// its own stores.
V4_HD inline void select_top_k(const float* p, const float* bias, uint32_t n, uint32_t k,
                               int32_t* experts) {
  int32_t prev = -1;
  float prev_score = 0.0f;
  for (uint32_t s = 0; s < k; ++s) {
    int32_t best = -1;
    float best_score = 0.0f;
    for (uint32_t e = 0; e < n; ++e) {
      const float b = p[e] + bias[e];
      if (prev >= 0 && !(b < prev_score || (b == prev_score && static_cast<int32_t>(e) > prev))) {
        continue;
      }
      if (best < 0 || b > best_score) {  // ties keep the lower id
        best = static_cast<int32_t>(e);
        best_score = b;
      }
    }
    experts[s] = best;
    prev = best;
    prev_score = best_score;
  }
}

// A token's experts from its router probabilities p (n_expert values): experts[0..k) in
// selection order (select_top_k, or the hash row's order) and their weights.
V4_HD inline void select_experts_from_probs(const ExpertSelection& sel, const float* p,
                                            const float* bias, const int32_t* hash_row,
                                            int32_t* experts, float* weights) {
  if (hash_row) {
    for (uint32_t s = 0; s < sel.k; ++s) experts[s] = hash_row[s];
  } else {
    select_top_k(p, bias, sel.n_expert, sel.k, experts);
  }
  float sum = 0.0f;
  for (uint32_t s = 0; s < sel.k; ++s) sum += p[experts[s]];
  for (uint32_t s = 0; s < sel.k; ++s) {
    const float pe = p[experts[s]];
    weights[s] = sel.weights_scale * (sel.normalize ? pe / sum : pe);
  }
}

// Chooses k experts from one token's n_expert router logits (select_experts_from_probs);
// `probs` is scratch of n_expert values.
V4_HD inline void select_experts_row(const ExpertSelection& sel, const float* logits,
                                     const float* bias, const int32_t* hash_row, float* probs,
                                     int32_t* experts, float* weights) {
  for (uint32_t e = 0; e < sel.n_expert; ++e) probs[e] = sqrt_softplus(logits[e]);
  select_experts_from_probs(sel, probs, bias, hash_row, experts, weights);
}

// Clamped SwiGLU of one value (spec §3.5): silu(min(g, limit)) · clamp(u, ±limit) · scale.
V4_HD inline float swiglu(float gate, float up, float limit, float scale) {
  const float g = fminf(gate, limit);
  const float v = fminf(fmaxf(up, -limit), limit);
  return g / (1.0f + expf(-g)) * v * scale;
}

// Clamped SwiGLU in place on gate.
V4_HD inline void swiglu_row(float* gate, const float* up, int64_t n, float limit, float scale) {
  for (int64_t i = 0; i < n; ++i) gate[i] = swiglu(gate[i], up[i], limit, scale);
}

}  // namespace v4::kernels
