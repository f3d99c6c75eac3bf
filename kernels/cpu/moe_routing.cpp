#include "kernels/cpu/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace v4::kernels {

float sqrt_softplus(float x) {
  const float sp = x > 20.0f ? x : x < -20.0f ? std::exp(x) : std::log1p(std::exp(x));
  return std::sqrt(sp);
}

void select_experts_row(const ExpertSelection& sel, const float* logits, const float* bias,
                        const int32_t* hash_row, float* probs, int32_t* ids, int32_t* experts,
                        float* weights) {
  float* p = probs;
  for (uint32_t e = 0; e < sel.n_expert; ++e) p[e] = sqrt_softplus(logits[e]);
  if (hash_row) {
    std::copy_n(hash_row, sel.k, experts);
  } else {
    std::iota(ids, ids + sel.n_expert, 0);
    auto biased = [&](int32_t e) { return p[e] + bias[e]; };
    std::partial_sort(ids, ids + sel.k, ids + sel.n_expert, [&](int32_t a, int32_t b) {
      return biased(a) != biased(b) ? biased(a) > biased(b) : a < b;
    });
    std::copy_n(ids, sel.k, experts);
  }
  float sum = 0.0f;
  for (uint32_t s = 0; s < sel.k; ++s) sum += p[experts[s]];
  for (uint32_t s = 0; s < sel.k; ++s) {
    const float pe = p[experts[s]];
    weights[s] = sel.weights_scale * (sel.normalize ? pe / sum : pe);
  }
}

void swiglu_row(float* gate, const float* up, int64_t n, float limit, float scale) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = std::min(gate[i], limit);
    const float v = std::clamp(up[i], -limit, limit);
    gate[i] = g / (1.0f + std::exp(-g)) * v * scale;
  }
}

}  // namespace v4::kernels
