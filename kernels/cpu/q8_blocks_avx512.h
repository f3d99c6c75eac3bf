// Shared by the AVX-512 kernels of the 32-value formats against Q8_0 activations
// (kernels/cpu/vec_dot_avx512.cpp, kernels/cpu/weight_rows_avx512.cpp): two blocks' values in one
// register, and the per-block integer sums of VNNI results. Internal to kernels/cpu.
#pragma once

#include <immintrin.h>

#include "kernels/cpu/quant_blocks.h"

namespace v4::kernels::avx512 {

#define V4_AVX512_Q8 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

// The values of two consecutive Q8_0 activation blocks.
V4_AVX512_Q8 inline __m512i activations_two(const BlockQ8_0* y) {
  return _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[0].qs))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[1].qs)), 1);
}

// Σ over each 256-bit half of two registers: lane k = block k's integer sum (exact).
V4_AVX512_Q8 inline __m128i block_sums(__m512i a, __m512i b) {
  const __m256i h = _mm256_hadd_epi32(
      _mm256_hadd_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1)),
      _mm256_hadd_epi32(_mm512_castsi512_si256(b), _mm512_extracti64x4_epi64(b, 1)));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

#undef V4_AVX512_Q8

}  // namespace v4::kernels::avx512
