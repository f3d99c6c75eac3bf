// A 16×16 transpose of 32-bit words in AVX-512 registers, for the row-group kernels' repacking
// (kernels/cpu/row_group_matmul*.cpp): word j of r[l] becomes word l of out[j]. Internal to
// kernels/cpu.
#pragma once

#include <immintrin.h>

namespace v4::kernels::avx512 {

__attribute__((target("avx512f"))) inline void transpose_16x16_u32(const __m512i* r, __m512i* out) {
  // u[4i + m], 128-bit lane k: word 4k + m of rows 4i..4i+3.
  __m512i u[16];
  for (int i = 0; i < 4; ++i) {
    const __m512i* x = r + 4 * i;
    const __m512i t0 = _mm512_unpacklo_epi32(x[0], x[1]), t1 = _mm512_unpackhi_epi32(x[0], x[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(x[2], x[3]), t3 = _mm512_unpackhi_epi32(x[2], x[3]);
    u[4 * i + 0] = _mm512_unpacklo_epi64(t0, t2);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t0, t2);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t1, t3);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t1, t3);
  }
  // Word 4k + m of all 16 rows: 128-bit lane k of u[m], u[4 + m], u[8 + m], u[12 + m].
  for (int m = 0; m < 4; ++m) {
    const __m512i a01 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0x44);
    const __m512i a23 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0xEE);
    const __m512i b01 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0x44);
    const __m512i b23 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0xEE);
    out[m] = _mm512_shuffle_i32x4(a01, b01, 0x88);
    out[4 + m] = _mm512_shuffle_i32x4(a01, b01, 0xDD);
    out[8 + m] = _mm512_shuffle_i32x4(a23, b23, 0x88);
    out[12 + m] = _mm512_shuffle_i32x4(a23, b23, 0xDD);
  }
}

}  // namespace v4::kernels::avx512
