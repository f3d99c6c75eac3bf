// Lane structure shared by the scalar and the AVX2 dot products of float weights (F32, F16,
// BF16) with F32 activations: product i is rounded to float, widened to double and added to lane
// i mod 8; the eight lanes are then summed in one fixed tree. Double lanes keep the sum as
// accurate as ggml's double accumulation, and the fixed structure lets a SIMD kernel (two
// registers of four double lanes) give bit-identical results to the scalar reference.
#pragma once

#include <cstdint>

namespace v4::kernels {

constexpr int kFloatDotLanes = 8;

// ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)): the order of adding the high half of a
// 4-lane register pair to the low half, then the high 128 bits to the low, then lane 1 to 0.
inline float reduce_float_dot_lanes(const double* lanes) {
  const double s0 = lanes[0] + lanes[4], s1 = lanes[1] + lanes[5];
  const double s2 = lanes[2] + lanes[6], s3 = lanes[3] + lanes[7];
  return static_cast<float>((s0 + s2) + (s1 + s3));
}

}  // namespace v4::kernels
