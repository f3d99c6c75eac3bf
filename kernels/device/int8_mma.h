// One warp's integer product on the tensor cores: a 16×16 tile of int32 sums over 32 int8
// products, S[m][n] = Σ_k A[m][k]·B[n][k] (or the two halves of 16 apart). On a GPU the warp's 32
// threads run it together with two 16×16×16 WMMA steps (integer accumulation, exact, so the tensor
// cores' internal order does not matter); on the host executor lane 0 computes the same integers
// and the other lanes do nothing (a host team runs its threads one after another, lane 0 first).
#pragma once

#include <cstdint>

#include "core/hd.h"

#if defined(__CUDACC__)
#include <mma.h>
#endif

namespace v4::kernels {

// Layout of both operands: two k-halves, each a 16×16 byte matrix with a row per m (A) or per n
// (B) and its 16 k-values contiguous (256 bytes a half, 32-byte aligned). S is row-major, 16
// ints a row, 32-byte aligned.
inline constexpr int kMmaTile = 16;
inline constexpr int kMmaHalfBytes = kMmaTile * kMmaTile;
inline constexpr int kMmaTileOutputs = kMmaTile * kMmaTile;

// With `halves`, the two k-halves' sums are kept apart: S over k < 16 to s, over k ≥ 16 to
// s + 256.
template <bool halves = false>
V4_HD inline void warp_mma_16x16x32(int lane, const int8_t* a, const int8_t* b, int32_t* s) {
#if defined(__CUDA_ARCH__)
  (void)lane;
  namespace wmma = nvcuda::wmma;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, signed char, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, signed char, wmma::col_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, int> fc;
  wmma::fill_fragment(fc, 0);
  for (int h = 0; h < 2; ++h) {
    wmma::load_matrix_sync(fa, a + h * kMmaHalfBytes, kMmaTile);
    wmma::load_matrix_sync(fb, b + h * kMmaHalfBytes, kMmaTile);
    wmma::mma_sync(fc, fa, fb, fc);
    if (halves) {
      wmma::store_matrix_sync(s + h * kMmaTileOutputs, fc, kMmaTile, wmma::mem_row_major);
      wmma::fill_fragment(fc, 0);
    }
  }
  if (!halves) wmma::store_matrix_sync(s, fc, kMmaTile, wmma::mem_row_major);
#else
  if (lane != 0) return;
  for (int m = 0; m < kMmaTile; ++m) {
    for (int n = 0; n < kMmaTile; ++n) {
      int32_t sum[2] = {0, 0};
      for (int h = 0; h < 2; ++h) {
        const int8_t* am = a + h * kMmaHalfBytes + m * kMmaTile;
        const int8_t* bn = b + h * kMmaHalfBytes + n * kMmaTile;
        for (int k = 0; k < kMmaTile; ++k) sum[h] += am[k] * bn[k];
      }
      if (halves) {
        s[m * kMmaTile + n] = sum[0];
        s[kMmaTileOutputs + m * kMmaTile + n] = sum[1];
      } else {
        s[m * kMmaTile + n] = sum[0] + sum[1];
      }
    }
  }
#endif
}

}  // namespace v4::kernels
