// FP4 E2M1 simulation used by the lightning indexer's QAT transform. Spec §3.4.4: per block of
// 32 values a power-of-two scale 2^ceil(log2(amax/6)) (amax floored at 6·2^-126), then rounding
// onto the grid {0, 0.5, 1, 1.5, 2, 3, 4, 6} with ties to the even grid index.
#pragma once

#include <array>
#include <cstdint>

namespace v4::kernels {

// The non-negative E2M1 values, by 3-bit code (the sign is the fourth bit).
inline constexpr std::array<float, 8> kE2m1Grid = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

// Nearest E2M1 value of x (|x| <= 6 expected; larger magnitudes saturate to ±6).
float e2m1_round(float x);

// In-place FP4 round-trip of n values in blocks of `block`.
void fp4_round_trip(float* x, int64_t n, int64_t block = 32);

// The lightning indexer's QAT transform of one row (spec §3.4.4), in place: Walsh–Hadamard
// rotation of the whole row, then the FP4 round-trip in blocks of 32.
void indexer_qat_transform(float* row, int64_t dim);

}  // namespace v4::kernels
