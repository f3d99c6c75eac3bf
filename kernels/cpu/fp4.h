// FP4 E2M1 simulation used by the lightning indexer's QAT transform. Spec §3.4.4: per block of
// 32 values a power-of-two scale 2^ceil(log2(amax/6)) (amax floored at 6·2^-126), then rounding
// onto the grid {0, 0.5, 1, 1.5, 2, 3, 4, 6} with ties to the even grid index. Shared by host and
// device code (V4_HD).
#pragma once

#include <math.h>

#include <array>
#include <cstdint>

#include "core/hd.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/hadamard.h"

namespace v4::kernels {

// The non-negative E2M1 values, by 3-bit code (the sign is the fourth bit).
inline constexpr std::array<float, 8> kE2m1Grid = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

// E2M1 value of 3-bit code i (device code cannot read kE2m1Grid's host storage).
V4_HD inline float e2m1_value(int i) {
  return i < 4 ? 0.5f * static_cast<float>(i)
               : (i < 6 ? static_cast<float>(i - 2) : 2.0f * (i - 4));
}

// Nearest E2M1 value of x (|x| <= 6 expected; larger magnitudes saturate to ±6).
V4_HD inline float e2m1_round(float x) {
  const float a = fabsf(x);
  int best = 7;
  for (int i = 0; i < 7; ++i) {
    const float mid = 0.5f * (e2m1_value(i) + e2m1_value(i + 1));  // exact: values are dyadic
    if (a < mid || (a == mid && i % 2 == 0)) {
      best = i;
      break;
    }
  }
  return copysignf(e2m1_value(best), x);
}

// In-place FP4 round-trip of n values in blocks of `block`.
V4_HD inline void fp4_round_trip(float* x, int64_t n, int64_t block = 32) {
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t b1 = n < b0 + block ? n : b0 + block;
    float amax = 6.0f * 0x1p-126f;
    for (int64_t i = b0; i < b1; ++i) amax = fmaxf(amax, fabsf(x[i]));
    const float s = pow2_ceil(amax / 6.0f);
    for (int64_t i = b0; i < b1; ++i) x[i] = s * e2m1_round(fminf(fmaxf(x[i] / s, -6.0f), 6.0f));
  }
}

// The lightning indexer's QAT transform of one row (spec §3.4.4), in place: Walsh–Hadamard
// rotation of the whole row, then the FP4 round-trip in blocks of 32.
V4_HD inline void indexer_qat_transform(float* row, int64_t dim) {
  hadamard_transform(row, dim);
  fp4_round_trip(row, dim, 32);
}

}  // namespace v4::kernels
