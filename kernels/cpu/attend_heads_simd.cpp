// attend_heads on AVX-512 and AVX2. A block of heads shares every row load: the scores pass
// keeps each head's 32 dot lanes in registers (two 16-float or four 8-float), the weighted-sum
// pass keeps each head's 32 output floats in registers across all rows. Both passes add in the
// reference's order (float_dot_lanes.h's lanes; rows in row order), with separate multiplies and
// adds as the reference rounds them, so the results are bit-identical to it.
#include "kernels/cpu/attend_heads_simd.h"

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused source of unmasked
// operations, which -O3 reports as maybe-uninitialized (a known false positive of the headers).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include "kernels/cpu/float_dot_lanes_simd.h"

#define V4_AVX512_F __attribute__((target("avx512f,avx512dq")))
#define V4_AVX2_F __attribute__((target("avx2")))

namespace v4::kernels {
namespace {

// Scores of heads h0..h0+NH-1 against every row, scaled, into w (n_rows per head).
template <int NH>
V4_AVX512_F void scores_avx512(const AttentionHeads& a, int64_t h0, float scale, float* w) {
  const int64_t hd = a.head_dim;
  const float* q = a.q + h0 * hd;
  for (size_t j = 0; j < a.n_rows; ++j) {
    const float* r = a.rows[j];
    __m512 acc[NH][2];
    for (int h = 0; h < NH; ++h) acc[h][0] = acc[h][1] = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; d += 32) {
      const __m512 r0 = _mm512_loadu_ps(r + d), r1 = _mm512_loadu_ps(r + d + 16);
      for (int h = 0; h < NH; ++h) {
        const float* qh = q + h * hd + d;
        acc[h][0] = _mm512_add_ps(acc[h][0], _mm512_mul_ps(_mm512_loadu_ps(qh), r0));
        acc[h][1] = _mm512_add_ps(acc[h][1], _mm512_mul_ps(_mm512_loadu_ps(qh + 16), r1));
      }
    }
    for (int h = 0; h < NH; ++h)
      w[h * a.n_rows + j] = simd::reduce_float_lanes(acc[h][0], acc[h][1]) * scale;
  }
}

// o for heads h0..h0+NH-1: the rows weighted by w (n_rows per head), divided by den.
template <int NH>
V4_AVX512_F void weighted_sum_avx512(const AttentionHeads& a, int64_t h0, const float* w,
                                     const float* den, float* o) {
  const int64_t hd = a.head_dim;
  for (int64_t d = 0; d < hd; d += 32) {
    __m512 acc[NH][2];
    for (int h = 0; h < NH; ++h) acc[h][0] = acc[h][1] = _mm512_setzero_ps();
    for (size_t j = 0; j < a.n_rows; ++j) {
      const float* r = a.rows[j] + d;
      const __m512 r0 = _mm512_loadu_ps(r), r1 = _mm512_loadu_ps(r + 16);
      for (int h = 0; h < NH; ++h) {
        const __m512 e = _mm512_set1_ps(w[h * a.n_rows + j]);
        acc[h][0] = _mm512_add_ps(acc[h][0], _mm512_mul_ps(e, r0));
        acc[h][1] = _mm512_add_ps(acc[h][1], _mm512_mul_ps(e, r1));
      }
    }
    for (int h = 0; h < NH; ++h) {
      float* out = o + (h0 + h) * hd + d;
      const __m512 dh = _mm512_set1_ps(den[h]);
      _mm512_storeu_ps(out, _mm512_div_ps(acc[h][0], dh));
      _mm512_storeu_ps(out + 16, _mm512_div_ps(acc[h][1], dh));
    }
  }
}

template <int NH>
V4_AVX2_F void scores_avx2(const AttentionHeads& a, int64_t h0, float scale, float* w) {
  const int64_t hd = a.head_dim;
  const float* q = a.q + h0 * hd;
  for (size_t j = 0; j < a.n_rows; ++j) {
    const float* r = a.rows[j];
    __m256 acc[NH][4];
    for (int h = 0; h < NH; ++h) {
      for (int k = 0; k < 4; ++k) acc[h][k] = _mm256_setzero_ps();
    }
    for (int64_t d = 0; d < hd; d += 32) {
      for (int k = 0; k < 4; ++k) {
        const __m256 rk = _mm256_loadu_ps(r + d + 8 * k);
        for (int h = 0; h < NH; ++h) {
          const __m256 qk = _mm256_loadu_ps(q + h * hd + d + 8 * k);
          acc[h][k] = _mm256_add_ps(acc[h][k], _mm256_mul_ps(qk, rk));
        }
      }
    }
    for (int h = 0; h < NH; ++h) w[h * a.n_rows + j] = simd::reduce_float_lanes(acc[h]) * scale;
  }
}

template <int NH>
V4_AVX2_F void weighted_sum_avx2(const AttentionHeads& a, int64_t h0, const float* w,
                                 const float* den, float* o) {
  const int64_t hd = a.head_dim;
  for (int64_t d = 0; d < hd; d += 16) {
    __m256 acc[NH][2];
    for (int h = 0; h < NH; ++h) acc[h][0] = acc[h][1] = _mm256_setzero_ps();
    for (size_t j = 0; j < a.n_rows; ++j) {
      const float* r = a.rows[j] + d;
      const __m256 r0 = _mm256_loadu_ps(r), r1 = _mm256_loadu_ps(r + 8);
      for (int h = 0; h < NH; ++h) {
        const __m256 e = _mm256_set1_ps(w[h * a.n_rows + j]);
        acc[h][0] = _mm256_add_ps(acc[h][0], _mm256_mul_ps(e, r0));
        acc[h][1] = _mm256_add_ps(acc[h][1], _mm256_mul_ps(e, r1));
      }
    }
    for (int h = 0; h < NH; ++h) {
      float* out = o + (h0 + h) * hd + d;
      const __m256 dh = _mm256_set1_ps(den[h]);
      _mm256_storeu_ps(out, _mm256_div_ps(acc[h][0], dh));
      _mm256_storeu_ps(out + 8, _mm256_div_ps(acc[h][1], dh));
    }
  }
}

// Heads h0..h0+NH-1 through one tier's passes: scores, the softmax with sinks (scalar, in the
// reference's code), then the weighted sum.
template <int NH, class Scores, class WeightedSum>
void heads(const AttentionHeads& a, int64_t h0, float* w, float* o, Scores scores,
           WeightedSum weighted_sum) {
  scores(a, h0, attention_scale(a.head_dim), w);
  float den[NH];
  for (int h = 0; h < NH; ++h)
    den[h] = softmax_with_sink(w + h * a.n_rows, a.n_rows, a.sinks[h0 + h]);
  weighted_sum(a, h0, w, den, o);
}

}  // namespace

// Four heads per block on AVX-512 (8 score and 8 output registers), two on AVX2,
// whose 16 registers hold no more.
void attend_heads_avx512(const AttentionHeads& a, float* scratch, float* o) {
  int64_t h = 0;
  for (; h + 4 <= a.n_heads; h += 4)
    heads<4>(a, h, scratch, o, scores_avx512<4>, weighted_sum_avx512<4>);
  for (; h < a.n_heads; ++h) heads<1>(a, h, scratch, o, scores_avx512<1>, weighted_sum_avx512<1>);
}

void attend_heads_avx2(const AttentionHeads& a, float* scratch, float* o) {
  int64_t h = 0;
  for (; h + 2 <= a.n_heads; h += 2)
    heads<2>(a, h, scratch, o, scores_avx2<2>, weighted_sum_avx2<2>);
  for (; h < a.n_heads; ++h) heads<1>(a, h, scratch, o, scores_avx2<1>, weighted_sum_avx2<1>);
}

}  // namespace v4::kernels
