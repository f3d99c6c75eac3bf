// Rotary position embedding of one head's tail (spec §3.4.1): interleaved pairs (x[2k], x[2k+1])
// rotated by θ = pos·ω_k, the angle taken in double; `inverse` rotates by −θ (the attention
// output). The frequencies ω_k come from the layer's RoPE parameters (model/v4/rope.h). Shared by
// host and device code (V4_HD).
#pragma once

#include <math.h>

#include <cstdint>

#include "core/hd.h"

namespace v4::kernels {

// Pair k of rope_rotate (pairs are independent: a GPU thread per pair).
V4_HD inline void rope_rotate_pair(float* x, const float* freqs, int64_t k, uint64_t pos,
                                   bool inverse) {
  const double theta = static_cast<double>(pos) * freqs[k];
  const float c = static_cast<float>(cos(theta));
  const float s = inverse ? -static_cast<float>(sin(theta)) : static_cast<float>(sin(theta));
  const float x0 = x[2 * k], x1 = x[2 * k + 1];
  x[2 * k] = x0 * c - x1 * s;
  x[2 * k + 1] = x0 * s + x1 * c;
}

V4_HD inline void rope_rotate(float* x, const float* freqs, int64_t n_pairs, uint64_t pos,
                              bool inverse) {
  for (int64_t k = 0; k < n_pairs; ++k) rope_rotate_pair(x, freqs, k, pos, inverse);
}

}  // namespace v4::kernels
