// The lane structure of every float dot product on the CPU — float weights (F32, F16, BF16)
// against F32 activations, and sparse attention's query·key scores — shared with the device
// ops: product i is rounded to float and added to float lane i mod 32; the 32 lanes are then
// summed in one fixed tree. The order depends on neither the batch, the thread nor the SIMD
// width: two 16-float or four 8-float registers hold the lanes, so AVX-512, AVX2 and this scalar
// form agree bit for bit, and the 32 independent chains keep a SIMD kernel from waiting on its
// adds. ggml's SIMD paths accumulate float dots in float lanes too; a 4096-term dot spreads over
// 32 lanes of 128 terms, so its rounding error stays near 128 float ulps of the terms at worst.
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace v4::kernels {

constexpr int kFloatDotLanes = 32;

// Lane k += lane k + w for w = 16, 8, 4, 2, 1: the order of adding a register's high half to its
// low half, from two 512-bit registers down to one float. Reads and overwrites `lanes`.
V4_HD inline float reduce_float_dot_lanes(float* lanes) {
  for (int width = kFloatDotLanes / 2; width >= 1; width /= 2) {
    for (int k = 0; k < width; ++k) lanes[k] = lanes[k] + lanes[k + width];
  }
  return lanes[0];
}

// Adds product(i) for i in [from, n) to lane i mod 32 and sums the lanes: the reference order of
// a whole dot (from 0, lanes zeroed) or of a SIMD kernel's tail after whole 32-value chunks (its
// registers stored to `lanes`). `product(i)` is value i's product, rounded to float.
template <class Product>
inline float finish_float_dot(float* lanes, int64_t from, int64_t n, Product product) {
  for (int64_t i = from; i < n; ++i) {
    const float p = product(i);
    lanes[i % kFloatDotLanes] = lanes[i % kFloatDotLanes] + p;
  }
  return reduce_float_dot_lanes(lanes);
}

// Σ over d < n of a[d]·b[d], in the lane order above. The loops over lanes have a constant trip
// count (the tail is predicated), so a GPU compiler unrolls them and keeps the lanes in
// registers rather than in a thread's local memory.
V4_HD inline float float_dot(const float* a, const float* b, int64_t n) {
  float lanes[kFloatDotLanes] = {};
  int64_t base = 0;
  for (; base + kFloatDotLanes <= n; base += kFloatDotLanes) {
    for (int k = 0; k < kFloatDotLanes; ++k) {
      const float product = a[base + k] * b[base + k];
      lanes[k] = lanes[k] + product;
    }
  }
  for (int k = 0; k < kFloatDotLanes; ++k) {
    if (base + k >= n) break;
    const float product = a[base + k] * b[base + k];
    lanes[k] = lanes[k] + product;
  }
  return reduce_float_dot_lanes(lanes);
}

}  // namespace v4::kernels
