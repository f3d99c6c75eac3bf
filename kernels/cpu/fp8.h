// FP8 E4M3 ("fn": no infinities, max 448) simulation of cached KV rows. Spec §3.4.2: per block of
// 64 values a power-of-two (UE8M0) scale 2^ceil(log2(amax/448)), amax floored at 1e-4, then
// round-to-nearest-even onto the E4M3 grid and back.
#pragma once

#include <cstdint>

namespace v4::kernels {

// Nearest E4M3fn value of x (|x| <= 448 expected; larger magnitudes saturate to ±448), ties to
// even mantissa. Subnormals step by 2^-9.
float e4m3_round(float x);

// In-place FP8 round-trip of n values in blocks of `block` (the last block may be shorter when n
// is not a multiple, as in reduced-size test models).
void fp8_round_trip(float* x, int64_t n, int64_t block = 64);

// 2^ceil(log2(v)) for v > 0, exactly (the UE8M0 scale rule shared with the FP4 simulation).
float pow2_ceil(float v);

}  // namespace v4::kernels
