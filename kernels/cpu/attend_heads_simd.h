// The SIMD tiers of attend_heads (kernels/cpu/attend_heads.h) and the pieces they share with the
// scalar reference. Internal to kernels/cpu.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "kernels/cpu/attend_heads.h"

namespace v4::kernels {

// The scores' scale: 1/sqrt(head_dim); the sink logit is not scaled.
inline float attention_scale(int64_t head_dim) {
  return 1.0f / std::sqrt(static_cast<float>(head_dim));
}

// Turns one head's scaled scores into unnormalized softmax weights in place, with the sink
// logit in the maximum and the denominator; returns the denominator (row order throughout).
inline float softmax_with_sink(float* w, size_t n, float sink) {
  float mx = sink;
  for (size_t j = 0; j < n; ++j) mx = std::max(mx, w[j]);
  float den = std::exp(sink - mx);
  for (size_t j = 0; j < n; ++j) {
    w[j] = std::exp(w[j] - mx);
    den = den + w[j];
  }
  return den;
}

// Whether the SIMD tiers take this shape: whole 32-lane chunks per row.
inline bool attend_heads_simd_shape(const AttentionHeads& a) {
  return a.head_dim > 0 && a.head_dim % 32 == 0;
}

// Bit-identical to attend_heads_reference; only call when the CPU has the tier and the shape
// passes attend_heads_simd_shape.
void attend_heads_avx512(const AttentionHeads& a, float* scratch, float* o);
void attend_heads_avx2(const AttentionHeads& a, float* scratch, float* o);

}  // namespace v4::kernels
