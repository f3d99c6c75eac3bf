// FP8 E4M3 ("fn": no infinities, max 448) simulation of cached KV rows. Spec §3.4.2: per block of
// 64 values a power-of-two (UE8M0) scale 2^ceil(log2(amax/448)), amax floored at 1e-4, then
// round-to-nearest-even onto the E4M3 grid and back. Host and device code (V4_HD) share these
// functions, so both backends round identically.
#pragma once

#include <math.h>

#include <cstdint>

#include "core/hd.h"

namespace v4::kernels {

// 2^ceil(log2(v)) for v > 0, exactly (the UE8M0 scale rule shared with the FP4 simulation).
V4_HD inline float pow2_ceil(float v) {
  int e = 0;
  const float m = frexpf(v, &e);  // v = m·2^e, m in [0.5, 1)
  return ldexpf(1.0f, m == 0.5f ? e - 1 : e);
}

// Nearest E4M3fn value of x (|x| <= 448 expected; larger magnitudes saturate to ±448), ties to
// even mantissa. Subnormals step by 2^-9.
V4_HD inline float e4m3_round(float x) {
  const float a = fminf(fabsf(x), 448.0f);
  if (a == 0.0f) return copysignf(0.0f, x);
  int e = 0;
  frexpf(a, &e);  // a in [2^(e-1), 2^e)
  // Three mantissa bits: the grid step is 2^(e-1-3); below the smallest normal 2^-6 the
  // subnormal step 2^-9 applies.
  const int exponent = e - 1 > -6 ? e - 1 : -6;
  const float step = ldexpf(1.0f, exponent - 3);
  const float q = nearbyintf(a / step);  // default rounding mode: ties to even
  return copysignf(fminf(q * step, 448.0f), x);
}

// In-place FP8 round-trip of n values in blocks of `block` (the last block may be shorter when n
// is not a multiple, as in reduced-size test models).
V4_HD inline void fp8_round_trip(float* x, int64_t n, int64_t block = 64) {
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t b1 = n < b0 + block ? n : b0 + block;
    float amax = 1e-4f;
    for (int64_t i = b0; i < b1; ++i) amax = fmaxf(amax, fabsf(x[i]));
    const float s = pow2_ceil(amax / 448.0f);
    for (int64_t i = b0; i < b1; ++i) {
      x[i] = s * e4m3_round(fminf(fmaxf(x[i] / s, -448.0f), 448.0f));
    }
  }
}

}  // namespace v4::kernels
