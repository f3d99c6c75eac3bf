// Internal to the AVX2 dot products (vec_dot_avx2*.cpp): the helpers they share (the AVX-512
// kernels use a few too) and the per-format kernels that live in their own files. Every kernel
// computes out[t] = vec_dot(type, w, a[t], nb · block size) for t < rows (1 to 4), bit for bit: the
// integer block sums are exact in any order, and the float scaling follows the scalar
// reference (kernels/cpu/vec_dot.cpp) operation by operation. Weight blocks are decoded once
// and shared by the rows.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_tables.h"
#include "kernels/cpu/rows_dispatch.h"

// cpu_has_avx2() requires F16C too, so every kernel may convert fp16 scales in hardware.
#define V4_AVX2 __attribute__((target("avx2,f16c")))

namespace v4::kernels::avx2 {

V4_AVX2 inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// The fp16 scales of four consecutive blocks as floats.
template <class Block>
V4_AVX2 inline __m128 four_scales(const Block* b) {
  return _mm_cvtph_ps(_mm_setr_epi16(static_cast<int16_t>(b[0].d), static_cast<int16_t>(b[1].d),
                                     static_cast<int16_t>(b[2].d), static_cast<int16_t>(b[3].d), 0,
                                     0, 0, 0));
}

// The doubled E2M1 values of MXFP4 (kvalues_mxfp4) in both 128-bit lanes: mxfp4_values' table.
V4_AVX2 inline __m256i mxfp4_table() {
  return _mm256_broadcastsi128_si256(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(kvalues_mxfp4)));
}

// An MXFP4 block's 32 values as int8 in position order: low nibbles are positions 0..15, high
// nibbles 16..31, each through one byte shuffle of `table` (mxfp4_table()).
V4_AVX2 inline __m256i mxfp4_values(const BlockMXFP4& x, __m256i table) {
  const __m128i m4 = _mm_set1_epi8(0xF);
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.qs));
  const __m256i codes =
      _mm256_setr_m128i(_mm_and_si128(q, m4), _mm_and_si128(_mm_srli_epi16(q, 4), m4));
  return _mm256_shuffle_epi8(table, codes);
}

// 32 bytes from an unaligned address.
V4_AVX2 inline __m256i load32(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// An fp16 scale as float: exact either way, one instruction instead of core/half.h's bit
// manipulation (which the scalar reference keeps).
V4_AVX2 inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

// Σ x·y over 32 int8 pairs as 8 int32 partial sums (exact; |x|, |y| <= 127 for activations).
V4_AVX2 inline __m256i dot_i8_32(__m256i x, __m256i y) {
  const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// The 128 sign patterns of the IQ2 formats (ksigns_iq2xs) as 8 bytes of +1 or −1 each, the
// form _mm256_sign_epi8 applies to 8 activations at once.
const uint64_t* iq2_sign_multipliers();

// w: one weight row of nb blocks; a: `rows` activation rows (Q8_K or Q8_0 blocks).
using RowsKernel = void (*)(const void* w, const void* const* a, int rows, int64_t nb, float* out);

// vec_dot_avx2_k_quants.cpp
void q4_k_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out);
void q5_k_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out);
void q6_k_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out);

// vec_dot_avx2_iq.cpp
void iq2_xs_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out);
void iq1_s_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out);
void iq1_m_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out);

}  // namespace v4::kernels::avx2
