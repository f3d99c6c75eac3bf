// Internal to the AVX2 dot products (vec_dot_avx2*.cpp): the helpers they share and the
// per-format kernels that live in their own files. Every kernel computes
// out[t] = vec_dot(type, w, a[t], nb · block size) for t < rows (1 to 4), bit for bit: the
// integer block sums are exact in any order, and the float scaling follows the scalar
// reference (kernels/cpu/vec_dot.cpp) operation by operation. Weight blocks are decoded once
// and shared by the rows.
#pragma once

#include <immintrin.h>

#include <cstdint>

// cpu_has_avx2() requires F16C too, so every kernel may convert fp16 scales in hardware.
#define V4_AVX2 __attribute__((target("avx2,f16c")))

namespace v4::kernels::avx2 {

V4_AVX2 inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
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

// Runs Kernel<NT> with NT = rows (1 to 4), so the per-row state stays in registers.
template <template <int> class Kernel, class Block, class Act>
void dispatch_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out) {
  const auto* x = static_cast<const Block*>(w);
  const Act* y[4];
  for (int t = 0; t < 4; ++t) y[t] = static_cast<const Act*>(a[t < rows ? t : rows - 1]);
  switch (rows) {
    case 1:
      return Kernel<1>::run(x, y, nb, out);
    case 2:
      return Kernel<2>::run(x, y, nb, out);
    case 3:
      return Kernel<3>::run(x, y, nb, out);
    default:
      return Kernel<4>::run(x, y, nb, out);
  }
}

}  // namespace v4::kernels::avx2
