// The device ops' FP8 and FP4 (QAT) simulations of the KV rows (spec §3.4.2, §3.4.4): the CPU's
// per-row functions (kernels/cpu/fp8.h, fp4.h) on each block or row, so both backends produce
// the same bits.
#pragma once

#include "kernels/cpu/fp4.h"
#include "kernels/cpu/fp8.h"
#include "model/backend/device/device_ops.h"

namespace v4::device {

// Largest FP8 block and QAT row kept in thread-local memory (V4: 64 and 128); larger ones (no
// model has them) run in place.
inline constexpr int64_t kMaxFp8Block = 128;
inline constexpr int64_t kMaxQatDim = 512;

template <class E>
void fp8_round_trip(E& e, DeviceScratch<E>& s, float* x, int64_t n_rows, int64_t stride, int64_t n,
                    int64_t block) {
  // A thread per (row, block): blocks are independent, and a block's 64 values sit in registers
  // (loads first, then stores) instead of a load-store round trip per value.
  const int64_t blocks = (n + block - 1) / block;
  if (block > kMaxFp8Block) {
    e.for_each(n_rows, [=] V4_HD(int64_t r) { kernels::fp8_round_trip(x + r * stride, n, block); });
    return;
  }
  e.for_each(n_rows * blocks, [=] V4_HD(int64_t i) {
    const int64_t b0 = i % blocks * block, len = n - b0 < block ? n - b0 : block;
    float v[kMaxFp8Block];
    float* p = x + i / blocks * stride + b0;
    for (int64_t j = 0; j < len; ++j) v[j] = p[j];
    kernels::fp8_round_trip(v, len, block);
    for (int64_t j = 0; j < len; ++j) p[j] = v[j];
  });
}

template <class E>
void indexer_qat(E& e, DeviceScratch<E>& s, float* x, int64_t n_rows, int64_t dim) {
  // The row in thread-local memory while the Hadamard stages and the FP4 blocks run: each stage
  // reads what the previous one wrote, which local memory answers far faster than global.
  if (dim > kMaxQatDim) {
    e.for_each(n_rows, [=] V4_HD(int64_t r) { kernels::indexer_qat_transform(x + r * dim, dim); });
    return;
  }
  e.for_each(n_rows, [=] V4_HD(int64_t r) {
    float v[kMaxQatDim];
    float* p = x + r * dim;
    for (int64_t j = 0; j < dim; ++j) v[j] = p[j];
    kernels::indexer_qat_transform(v, dim);
    for (int64_t j = 0; j < dim; ++j) p[j] = v[j];
  });
}

}  // namespace v4::device
