// The dot product of a query head with a key row in sparse attention (spec §3.4), shared by the
// CPU kernels and the device ops. Product d is rounded to float and added to lane d mod 32; the
// 32 lanes are then summed in one fixed tree. The order does not depend on the batch, the thread
// or the SIMD width, and it gives SIMD kernels independent add chains to work on: two 16-float
// or four 8-float registers hold the lanes, so AVX-512, AVX2 and this scalar form agree bit for
// bit.
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace v4::kernels {

constexpr int kAttentionDotLanes = 32;

// Lane k += lane k + w for w = 16, 8, 4, 2, 1: the order of adding a register's high half to its
// low half, from two 512-bit registers down to one float. Reads and overwrites `lanes`.
V4_HD inline float reduce_attention_lanes(float* lanes) {
  for (int width = kAttentionDotLanes / 2; width >= 1; width /= 2) {
    for (int k = 0; k < width; ++k) lanes[k] = lanes[k] + lanes[k + width];
  }
  return lanes[0];
}

// sum over d < n of a[d] * b[d], in the lane order above.
V4_HD inline float attention_dot(const float* a, const float* b, int64_t n) {
  float lanes[kAttentionDotLanes] = {};
  for (int64_t d = 0; d < n; ++d) {
    const float product = a[d] * b[d];
    lanes[d % kAttentionDotLanes] = lanes[d % kAttentionDotLanes] + product;
  }
  return reduce_attention_lanes(lanes);
}

}  // namespace v4::kernels
