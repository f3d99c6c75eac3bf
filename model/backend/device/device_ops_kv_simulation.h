// The device ops' FP8 and FP4 (QAT) simulations of the KV rows (spec §3.4.2, §3.4.4): the CPU's
// per-row functions (kernels/cpu/fp8.h, fp4.h) on each block or row, so both backends produce
// the same bits.
#pragma once

#include <math.h>

#include "kernels/cpu/fp4.h"
#include "kernels/cpu/fp8.h"
#include "model/backend/device/device_ops.h"

namespace v4::device {

// Largest FP8 block kept in thread-local memory (V4: 64); larger ones (no model has them) run in
// place.
inline constexpr int64_t kMaxFp8Block = 128;
// The indexer's FP4 block (spec §3.4.4).
inline constexpr int64_t kFp4Block = 32;

enum class BlockRounding { kFp8, kFp4 };

// The FP8 or FP4 round trip of the first n values of n_rows rows (`stride` apart) in blocks of
// `block` (at most kMaxFp8Block): a thread per (row, block), blocks being independent, with the
// block's values in thread-local memory (loads first, then stores) instead of a load-store round
// trip per value.
template <class E>
void round_trip_blocks(E& e, float* x, int64_t n_rows, int64_t stride, int64_t n, int64_t block,
                       BlockRounding rounding) {
  const int64_t blocks = (n + block - 1) / block;
  const bool fp8 = rounding == BlockRounding::kFp8;
  e.for_each(n_rows * blocks, [=] V4_HD(int64_t i) {
    const int64_t b0 = i % blocks * block, len = n - b0 < block ? n - b0 : block;
    float v[kMaxFp8Block];
    float* p = x + i / blocks * stride + b0;
    for (int64_t j = 0; j < len; ++j) v[j] = p[j];
    if (fp8) {
      kernels::fp8_round_trip(v, len, block);
    } else {
      kernels::fp4_round_trip(v, len, block);
    }
    for (int64_t j = 0; j < len; ++j) p[j] = v[j];
  });
}

template <class E>
void fp8_round_trip(E& e, DeviceScratch<E>& s, float* x, int64_t n_rows, int64_t stride, int64_t n,
                    int64_t block) {
  if (block > kMaxFp8Block) {
    e.for_each(n_rows, [=] V4_HD(int64_t r) { kernels::fp8_round_trip(x + r * stride, n, block); });
    return;
  }
  round_trip_blocks(e, x, n_rows, stride, n, block, BlockRounding::kFp8);
}

// The Walsh–Hadamard rotation a launch per butterfly stage and a thread per (row, butterfly):
// each butterfly is the CPU's a + b, a − b on the same pair, so the rotation is bit-identical,
// with the 1/sqrt(n) scale applied as the CPU does, after the last stage's sums. Then the FP4
// round trip a thread per (row, block of 32) in thread-local memory.
template <class E>
void indexer_qat(E& e, DeviceScratch<E>& s, float* x, int64_t n_rows, int64_t dim) {
  if (n_rows <= 0 || dim <= 0) return;
  const int64_t half = dim / 2;
  const float scale = 1.0f / sqrtf(static_cast<float>(dim));
  for (int64_t h = 1; h < dim; h *= 2) {
    const bool last = 2 * h >= dim;
    e.for_each(n_rows * half, [=] V4_HD(int64_t i) {
      const int64_t p = i % half, j = p / h * 2 * h + p % h;
      float* row = x + i / half * dim;
      const float a = row[j], b = row[j + h];
      float sum = a + b, diff = a - b;
      if (last) {
        sum = sum * scale;
        diff = diff * scale;
      }
      row[j] = sum;
      row[j + h] = diff;
    });
  }
  round_trip_blocks(e, x, n_rows, dim, dim, kFp4Block, BlockRounding::kFp4);
}

}  // namespace v4::device
