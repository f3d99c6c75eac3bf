// AVX2 dot products of the K-quant formats with sub-block scales (Q4_K, Q5_K, Q6_K) against up to
// four Q8_K activation rows (vec_dot_avx2_kernels.h). The reference (kernels/cpu/vec_dot.cpp)
// accumulates aux32[l], l < 8: Σ over sub-blocks of scale · the code·q8 products at the
// sub-block positions ≡ l (mod 8). Those are exact integers, so they may be formed in any order:
// codes and q8 are byte-shuffled within 128-bit halves so that one maddubs adds positions l and
// l+8, and one madd applies the sub-block's scale. The float scaling then follows the reference
// lane by lane.
#include <immintrin.h>

#include "core/half.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/vec_dot_avx2_kernels.h"

namespace v4::kernels::avx2 {
namespace {

// Per 128-bit half: byte k of the result takes positions k/2 + 8·(k mod 2).
V4_AVX2 inline __m256i pair_l_l8(__m256i v) {
  const __m256i order = _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15, 0, 8,
                                         1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  return _mm256_shuffle_epi8(v, order);
}

// int32 lanes of (q, sign) pairs times (scale, 0): q · scale exactly, for 8 int16 lanes q.
V4_AVX2 inline __m256i scale_lanes(__m128i q, int32_t scale) {
  return _mm256_madd_epi16(_mm256_cvtepi16_epi32(q), _mm256_set1_epi32(scale & 0xFFFF));
}

// The reference's float tail of one block: sums[l] += d · aux32[l].
V4_AVX2 inline __m256 add_scaled(__m256 sums, float d, __m256i aux) {
  return _mm256_add_ps(sums, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(aux)));
}

V4_AVX2 inline float sum_lanes(float sumf, __m256 sums) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sums);
  for (int l = 0; l < 8; ++l) sumf += lanes[l];
  return sumf;
}

// The 256 codes (0..15 for Q4_K, 0..31 for Q5_K) as 8 vectors of 32, one per sub-block, in
// pair_l_l8 order.
V4_AVX2 inline void k4_codes(const BlockQ4K& x, __m256i codes[8]) {
  const __m256i m4 = _mm256_set1_epi8(0xF);
  for (int c = 0; c < 4; ++c) {
    const __m256i q4 = load32(x.qs + 32 * c);
    codes[2 * c] = pair_l_l8(_mm256_and_si256(q4, m4));
    codes[2 * c + 1] = pair_l_l8(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4));
  }
}

V4_AVX2 inline void k4_codes(const BlockQ5K& x, __m256i codes[8]) {
  const __m256i m4 = _mm256_set1_epi8(0xF), sixteen = _mm256_set1_epi8(16);
  const __m256i qh = load32(x.qh);
  // Bit 2c of qh[l] is the fifth bit of position 64c + l, bit 2c+1 of position 64c + 32 + l.
  auto fifth = [&](int bit) V4_AVX2 {
    const __m256i mask = _mm256_set1_epi8(static_cast<char>(1 << bit));
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, mask), mask), sixteen);
  };
  for (int c = 0; c < 4; ++c) {
    const __m256i q4 = load32(x.qs + 32 * c);
    codes[2 * c] = pair_l_l8(_mm256_or_si256(_mm256_and_si256(q4, m4), fifth(2 * c)));
    codes[2 * c + 1] = pair_l_l8(
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4), fifth(2 * c + 1)));
  }
}

// Q4_K and Q5_K (sub-blocks of 32, 6-bit scales and mins: the reference's dot_k4).
template <class Block>
struct K4Rows {
  template <int NT>
  struct Kernel {
    V4_AVX2 static void run(const Block* x, const BlockQ8K* const* y, int64_t nb, float* out) {
      __m256 sums[NT];
      float sumf[NT];
      for (int t = 0; t < NT; ++t) {
        sums[t] = _mm256_setzero_ps();
        sumf[t] = 0.0f;
      }
      for (int64_t i = 0; i < nb; ++i) {
        uint8_t scales[8], mins[8];
        for (int j = 0; j < 8; ++j) unpack_scale_min_k4(j, x[i].scales, &scales[j], &mins[j]);
        __m256i codes[8];
        k4_codes(x[i], codes);
        // Lane j of the 16 takes mins[j / 2], the min of the sub-block bsums[j] lies in.
        const __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mins));
        const __m256i min_lanes = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
        const float xd = half_to_float(x[i].d), xdmin = half_to_float(x[i].dmin);
        for (int t = 0; t < NT; ++t) {
          const BlockQ8K& yb = y[t][i];
          // Σ bsums[j]·mins[j/2], exact: |bsum| <= 16·127, min <= 63.
          const int sumi = hsum_i32(_mm256_madd_epi16(load32(yb.bsums), min_lanes));
          __m256i aux = _mm256_setzero_si256();
          for (int j = 0; j < 8; ++j) {
            // |maddubs lane| <= 2·31·127; the two halves (one sub-block) add up below 2^15.
            const __m256i p = _mm256_maddubs_epi16(codes[j], pair_l_l8(load32(yb.qs + 32 * j)));
            const __m128i q =
                _mm_add_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
            aux = _mm256_add_epi32(aux, scale_lanes(q, scales[j]));
          }
          sums[t] = add_scaled(sums[t], xd * yb.d, aux);
          const float dmin = xdmin * yb.d;
          sumf[t] -= dmin * sumi;
        }
      }
      for (int t = 0; t < NT; ++t) out[t] = sum_lanes(sumf[t], sums[t]);
    }
  };
};

// Q6_K: 6-bit codes u = a + 32 in 0..63, sub-blocks of 16 with signed 8-bit scales. Σ a·q8 is
// maddubs(u, q8) − maddubs(32, q8); each 128-bit half is one sub-block.
template <int NT>
struct Q6KRows {
  V4_AVX2 static void run(const BlockQ6K* x, const BlockQ8K* const* y, int64_t nb, float* out) {
    const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3);
    const __m256i m32 = _mm256_set1_epi8(32);
    __m256 sums[NT];
    for (int t = 0; t < NT; ++t) sums[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
      __m256i codes[8];  // positions 32c .. 32c+31, in pair_l_l8 order
      for (int half = 0; half < 2; ++half) {
        const __m256i qa = load32(x[i].ql + 64 * half), qb = load32(x[i].ql + 64 * half + 32);
        const __m256i qh = load32(x[i].qh + 32 * half);
        auto high = [&](int shift) V4_AVX2 {
          return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), m3), 4);
        };
        __m256i* c = codes + 4 * half;
        c[0] = pair_l_l8(_mm256_or_si256(_mm256_and_si256(qa, m4), high(0)));
        c[1] = pair_l_l8(_mm256_or_si256(_mm256_and_si256(qb, m4), high(2)));
        c[2] = pair_l_l8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4), high(4)));
        c[3] = pair_l_l8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4), high(6)));
      }
      const float xd = half_to_float(x[i].d);
      for (int t = 0; t < NT; ++t) {
        const BlockQ8K& yb = y[t][i];
        __m256i aux = _mm256_setzero_si256();
        for (int c = 0; c < 8; ++c) {
          const __m256i y8 = pair_l_l8(load32(yb.qs + 32 * c));
          // |lanes| <= 2·63·127 and 2·32·127: no saturation, and the difference fits int16.
          const __m256i p =
              _mm256_sub_epi16(_mm256_maddubs_epi16(codes[c], y8), _mm256_maddubs_epi16(m32, y8));
          aux = _mm256_add_epi32(aux, scale_lanes(_mm256_castsi256_si128(p), x[i].scales[2 * c]));
          aux = _mm256_add_epi32(
              aux, scale_lanes(_mm256_extracti128_si256(p, 1), x[i].scales[2 * c + 1]));
        }
        sums[t] = add_scaled(sums[t], xd * yb.d, aux);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = sum_lanes(0.0f, sums[t]);
  }
};

}  // namespace

void q4_k_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out) {
  dispatch_rows<K4Rows<BlockQ4K>::Kernel, BlockQ4K, BlockQ8K>(w, a, rows, nb, out);
}

void q5_k_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out) {
  dispatch_rows<K4Rows<BlockQ5K>::Kernel, BlockQ5K, BlockQ8K>(w, a, rows, nb, out);
}

void q6_k_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out) {
  dispatch_rows<Q6KRows, BlockQ6K, BlockQ8K>(w, a, rows, nb, out);
}

}  // namespace v4::kernels::avx2
