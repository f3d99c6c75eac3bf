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

// The Walsh–Hadamard rotation of one row (dim a power of two, as the CPU requires) over a team:
// a phase per butterfly stage, a thread per butterfly. Each butterfly is the CPU's a + b, a − b on
// the same pair (kernels/cpu/hadamard.h), and the 1/sqrt(n) scale multiplies the last stage's
// results as the CPU multiplies them after it, so the rotation is bit-identical.
template <class Team>
V4_HD void hadamard_team(const Team& team, float* row, int64_t dim) {
  const int64_t half = dim / 2;
  const float scale = 1.0f / sqrtf(static_cast<float>(dim));
  for (int64_t h = 1; h < dim; h *= 2) {
    const bool last = 2 * h >= dim;
    team.threads([&](int l) {
      for (int64_t p = l; p < half; p += team.size()) {
        const int64_t j = p / h * 2 * h + p % h;
        const float a = row[j], b = row[j + h];
        float sum = a + b, diff = a - b;
        if (last) {
          sum = sum * scale;
          diff = diff * scale;
        }
        row[j] = sum;
        row[j + h] = diff;
      }
    });
  }
}

// Threads of the team that rotates and rounds one indexer row.
inline constexpr int kQatTeam = 128;

// The indexer's QAT (kernels::indexer_qat_transform) of each row, one launch: a team per row
// rotates it (hadamard_team), then rounds its FP4 blocks of 32 a block per thread (each block's
// arithmetic is its own).
template <class E>
void indexer_qat(E& e, DeviceScratch<E>& s, float* x, int64_t n_rows, int64_t dim) {
  if (n_rows <= 0 || dim <= 0) return;
  e.for_each_team(n_rows, kQatTeam, 0, [=] V4_HD(int64_t r, const typename E::Team& team) {
    float* row = x + r * dim;
    hadamard_team(team, row, dim);
    team.threads([&](int l) {
      for (int64_t b0 = l * kFp4Block; b0 < dim; b0 += team.size() * kFp4Block) {
        kernels::fp4_round_trip(row + b0, dim - b0 < kFp4Block ? dim - b0 : kFp4Block, kFp4Block);
      }
    });
  });
}

}  // namespace v4::device
