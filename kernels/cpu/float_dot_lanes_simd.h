// reduce_float_dot_lanes (kernels/cpu/float_dot_lanes.h) on lanes held in registers: two
// 16-float AVX-512 registers (lanes 0-15, 16-31) or four 8-float AVX2 registers (lanes 0-7, ...,
// 24-31). Internal to kernels/cpu.
#pragma once

#include <immintrin.h>

namespace v4::kernels::simd {

// The last two steps on four floats: lanes + high pair, then lane 0 + lane 1.
__attribute__((target("avx2"))) inline float reduce_float_lanes4(__m128 s4) {
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

__attribute__((target("avx512f,avx512dq"))) inline float reduce_float_lanes(__m512 lo, __m512 hi) {
  const __m512 s16 = _mm512_add_ps(lo, hi);
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(s16), _mm512_extractf32x8_ps(s16, 1));
  return reduce_float_lanes4(_mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1)));
}

__attribute__((target("avx2"))) inline float reduce_float_lanes(const __m256* l) {
  const __m256 s8 = _mm256_add_ps(_mm256_add_ps(l[0], l[2]), _mm256_add_ps(l[1], l[3]));
  return reduce_float_lanes4(_mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1)));
}

}  // namespace v4::kernels::simd
