// One warp's integer product on the tensor cores: a 16×16 tile of int32 sums over 32 int8
// products, S[m][n] = Σ_k A[m][k]·B[n][k]. On a GPU the warp's 32 threads run it together with
// two 16×16×16 WMMA steps (integer accumulation, exact, so the tensor cores' internal order does
// not matter); on the host executor lane 0 computes the same integers and the other lanes do
// nothing (a host team runs its threads one after another, lane 0 first).
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
  }
  wmma::store_matrix_sync(s, fc, kMmaTile, wmma::mem_row_major);
#else
  if (lane != 0) return;
  for (int m = 0; m < kMmaTile; ++m) {
    for (int n = 0; n < kMmaTile; ++n) {
      int32_t sum = 0;
      for (int h = 0; h < 2; ++h) {
        const int8_t* am = a + h * kMmaHalfBytes + m * kMmaTile;
        const int8_t* bn = b + h * kMmaHalfBytes + n * kMmaTile;
        for (int k = 0; k < kMmaTile; ++k) sum += am[k] * bn[k];
      }
      s[m * kMmaTile + n] = sum;
    }
  }
#endif
}

}  // namespace v4::kernels
