// Rounding primitives of ggml's reference quantizers, reproduced exactly so that our encoders
// make the same choices as ggml's `quantize_row_*_ref` (spec §6). Internal to kernels/cpu.
#pragma once

#include <bit>
#include <cstdint>

#include "core/hd.h"

namespace v4::kernels {

// ggml's GROUP_MAX_EPS: a group whose largest magnitude is below this is treated as all-zero.
inline constexpr float kGroupMaxEps = 1e-15f;

// ggml's nearest_int: adding 1.5·2^23 puts the integer in the low mantissa bits, so this rounds
// half to EVEN (unlike roundf, which Q8_0 uses). Valid for |x| <= 2^22 − 1. Relies on strict
// IEEE float addition (no -ffast-math).
V4_HD inline int nearest_int(float x) {
  const float shifted = x + 12582912.f;
  const int32_t bits = std::bit_cast<int32_t>(shifted);
  return (bits & 0x007FFFFF) - 0x00400000;
}

}  // namespace v4::kernels
