// Shared by the AVX-512 kernels of the 32-value formats against Q8_0 activations
// (kernels/cpu/vec_dot_avx512.cpp, kernels/cpu/weight_rows_avx512.cpp): two Q8_0 or MXFP4 blocks'
// values in one register, and the per-block integer sums of VNNI results. Internal to
// kernels/cpu.
#pragma once

#include <immintrin.h>

#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_tables.h"

namespace v4::kernels::avx512 {

#define V4_AVX512_BLOCKS __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

// The values of two consecutive Q8_0 activation blocks.
V4_AVX512_BLOCKS inline __m512i activations_two(const BlockQ8_0* y) {
  return _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[0].qs))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[1].qs)), 1);
}

// Σ over each 256-bit half of two registers: lane k = block k's integer sum (exact).
V4_AVX512_BLOCKS inline __m128i block_sums(__m512i a, __m512i b) {
  const __m256i h = _mm256_hadd_epi32(
      _mm256_hadd_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1)),
      _mm256_hadd_epi32(_mm512_castsi512_si256(b), _mm512_extracti64x4_epi64(b, 1)));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// Two consecutive MXFP4 blocks' values as signed bytes in position order (low nibbles are
// positions 0..15 of a block, high nibbles 16..31), through one in-lane byte shuffle.
V4_AVX512_BLOCKS inline __m512i mxfp4_two(const BlockMXFP4* x) {
  const __m256i m4 = _mm256_set1_epi8(0xF);
  const __m256i q = _mm256_setr_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[0].qs)),
                                      _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[1].qs)));
  const __m512i split =
      _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(q, m4)),
                         _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), 1);  // lo0 lo1 hi0 hi1
  const __m512i codes = _mm512_shuffle_i64x2(split, split, _MM_SHUFFLE(3, 1, 2, 0));
  return _mm512_shuffle_epi8(
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kvalues_mxfp4))),
      codes);
}

// The E8M0 scales of four consecutive MXFP4 blocks, halved (kvalues_mxfp4 holds doubled values).
inline __m128 mxfp4_four_scales(const BlockMXFP4* x) {
  return _mm_setr_ps(e8m0_to_fp32_half(x[0].e), e8m0_to_fp32_half(x[1].e),
                     e8m0_to_fp32_half(x[2].e), e8m0_to_fp32_half(x[3].e));
}

#undef V4_AVX512_BLOCKS

}  // namespace v4::kernels::avx512
