#include "kernels/cpu/vec_dot_avx2.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/float_dot_lanes.h"
#include "kernels/cpu/float_dot_lanes_simd.h"
#include "kernels/cpu/prefetch.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_tables.h"
#include "kernels/cpu/vec_dot_avx2_kernels.h"
#include "kernels/cpu/vec_dot_avx512.h"

namespace v4::kernels {
namespace {

using avx2::dot_i8_32;
using avx2::four_scales;
using avx2::half_to_float;
using avx2::hsum_i32;

// Two int32 vectors of partial sums reduced together: out[0] = Σ a, out[1] = Σ b (exact).
V4_AVX2 inline void hsum2_i32(__m256i a, __m256i b, int32_t out[2]) {
  const __m256i h = _mm256_hadd_epi32(a, b);  // a01 a23 b01 b23 | a45 a67 b45 b67
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  s = _mm_hadd_epi32(s, s);  // Σa Σb Σa Σb
  out[0] = _mm_cvtsi128_si32(s);
  out[1] = _mm_extract_epi32(s, 1);
}

// Four int32 vectors of partial sums reduced together: lane k of the result is Σ p[k] (exact).
V4_AVX2 inline __m128i hsum4_i32(const __m256i p[4]) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// sumf += terms[0]; … sumf += terms[3]: the reference's float chain, block by block.
V4_AVX2 inline float add_in_order(float sumf, __m128 terms) {
  alignas(16) float t[4];
  _mm_store_ps(t, terms);
  sumf += t[0];
  sumf += t[1];
  sumf += t[2];
  sumf += t[3];
  return sumf;
}

// Four blocks per iteration: their integer sums are reduced together and their terms
// Σ·(d_x·d_y) formed in SIMD lanes (the reference's products), then added in block order.
V4_AVX2 float dot_q8_0(const BlockQ8_0* x, const BlockQ8_0* y, int64_t nb) {
  float sumf = 0;
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    __m256i p[4];
    for (int k = 0; k < 4; ++k) {
      p[k] = dot_i8_32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i + k].qs)),
                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i + k].qs)));
    }
    const __m128 dxy = _mm_mul_ps(four_scales(x + i), four_scales(y + i));
    sumf = add_in_order(sumf, _mm_mul_ps(_mm_cvtepi32_ps(hsum4_i32(p)), dxy));
  }
  for (; i < nb; ++i) {
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const int sumi = hsum_i32(dot_i8_32(qx, qy));
    sumf += sumi * (half_to_float(x[i].d) * half_to_float(y[i].d));  // reference order
  }
  return sumf;
}

// Q2_K against NT activation rows: codes, sub-block scales and mins are unpacked once per block
// for all rows; each row keeps the reference's exact integer sums (the min term Σ bsums·min as
// one madd) and float order.
template <int NT>
V4_AVX2 void dot_q2_k_rows(const BlockQ2K* x, const BlockQ8K* const* y, int64_t nb, float* out) {
  const __m256i m3 = _mm256_set1_epi8(3);
  const __m128i m4 = _mm_set1_epi8(0xF);
  // Byte shuffles that spread scale 2k over int16 lanes 0..7 and scale 2k+1 over lanes 8..15
  // (the high byte of each lane reads index 0x80: zero).
  __m256i spread[8];
  for (int k = 0; k < 8; ++k) {
    spread[k] = _mm256_setr_m128i(_mm_set1_epi16(static_cast<int16_t>(0x8000 | (2 * k))),
                                  _mm_set1_epi16(static_cast<int16_t>(0x8000 | (2 * k + 1))));
  }
  float sumf[NT] = {};
  for (int64_t i = 0; i < nb; ++i) {
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales));
    const __m256i all_scales = _mm256_broadcastsi128_si256(_mm_and_si128(sc, m4));
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
    __m256i codes[8], scales[8];
    for (int half = 0, k = 0; half < 2; ++half) {
      const __m256i q2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs + 32 * half));
      for (int shift = 0; shift < 8; shift += 2, ++k) {
        codes[k] = _mm256_and_si256(_mm256_srli_epi16(q2, shift), m3);
        scales[k] = _mm256_shuffle_epi8(all_scales, spread[k]);
      }
    }
    const float xd = half_to_float(x[i].d), xdmin = half_to_float(x[i].dmin);
    for (int t = 0; t < NT; ++t) {
      const BlockQ8K& yb = y[t][i];
      const float dall = yb.d * xd;
      const float dmin = yb.d * xdmin;
      __m256i acc = _mm256_setzero_si256();
      for (int k = 0; k < 8; ++k) {
        const __m256i y8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb.qs + 32 * k));
        const __m256i p16 = _mm256_maddubs_epi16(codes[k], y8);  // codes unsigned 0..3
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p16, scales[k]));
      }
      // |bsum| <= 16·127 and min <= 15: the products and their sums stay inside int32.
      const __m256i summs =
          _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb.bsums)), mins);
      int32_t sums[2];
      hsum2_i32(acc, summs, sums);
      sumf[t] += dall * sums[0] - dmin * sums[1];
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = sumf[t];
}

V4_AVX2 float dot_q2_k(const BlockQ2K* x, const BlockQ8K* y, int64_t nb) {
  float out;
  dot_q2_k_rows<1>(x, &y, nb, &out);
  return out;
}

// MXFP4 against NT Q8_0 rows: the 32 codes become their doubled E2M1 values through one byte
// shuffle, once per block for all rows; each row's block sum is exact and scaled as the
// reference does (d = d_y · 2^(e−128), then d · Σ).
template <int NT>
struct Mxfp4Rows {
  V4_AVX2 static void run(const BlockMXFP4* x, const BlockQ8_0* const* y, int64_t nb, float* out) {
    const __m256i values = avx2::mxfp4_table();
    float sumf[NT] = {};
    int64_t i = 0;
    // Four blocks at a time, as dot_q8_0: terms in SIMD lanes, added in block order.
    for (; i + 4 <= nb; i += 4) {
      __m256i w[4];
      for (int k = 0; k < 4; ++k) w[k] = avx2::mxfp4_values(x[i + k], values);
      const __m128 xe = _mm_setr_ps(e8m0_to_fp32_half(x[i].e), e8m0_to_fp32_half(x[i + 1].e),
                                    e8m0_to_fp32_half(x[i + 2].e), e8m0_to_fp32_half(x[i + 3].e));
      for (int t = 0; t < NT; ++t) {
        __m256i p[4];
        for (int k = 0; k < 4; ++k) {
          p[k] =
              dot_i8_32(w[k], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][i + k].qs)));
        }
        const __m128 d = _mm_mul_ps(four_scales(y[t] + i), xe);
        sumf[t] = add_in_order(sumf[t], _mm_mul_ps(d, _mm_cvtepi32_ps(hsum4_i32(p))));
      }
    }
    for (; i < nb; ++i) {
      const __m256i w = avx2::mxfp4_values(x[i], values);
      const float xe = e8m0_to_fp32_half(x[i].e);
      for (int t = 0; t < NT; ++t) {
        const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][i].qs));
        const int sumi = hsum_i32(dot_i8_32(w, qy));
        const float d = half_to_float(y[t][i].d) * xe;
        sumf[t] += d * sumi;
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = sumf[t];
  }
};

// IQ2_XXS against NT activation rows. Grid rows and sign masks are gathered once per group
// for all rows. The block's integer sum Σ_g (2·s_g + 1)·Σ grid·q8 is exact, so the scale is
// applied inside madd and the lanes are reduced once per block instead of once per group.
template <int NT>
V4_AVX2 void dot_iq2_xxs_rows(const BlockIQ2XXS* x, const BlockQ8K* const* y, int64_t nb,
                              float* out) {
  const uint64_t* sign = avx2::iq2_sign_multipliers();
  float sumf[NT] = {};
  for (int64_t i = 0; i < nb; ++i) {
    __m256i grid[kQK_K / 32], signs[kQK_K / 32], scale[kQK_K / 32];
    for (int g = 0; g < kQK_K / 32; ++g) {
      uint32_t aux[2];
      std::memcpy(aux, x[i].qs + 4 * g, sizeof(aux));
      grid[g] = _mm256_setr_epi64x(static_cast<int64_t>(iq2xxs_grid[aux[0] & 0xFF]),
                                   static_cast<int64_t>(iq2xxs_grid[(aux[0] >> 8) & 0xFF]),
                                   static_cast<int64_t>(iq2xxs_grid[(aux[0] >> 16) & 0xFF]),
                                   static_cast<int64_t>(iq2xxs_grid[aux[0] >> 24]));
      signs[g] = _mm256_setr_epi64x(static_cast<int64_t>(sign[aux[1] & 127]),
                                    static_cast<int64_t>(sign[(aux[1] >> 7) & 127]),
                                    static_cast<int64_t>(sign[(aux[1] >> 14) & 127]),
                                    static_cast<int64_t>(sign[(aux[1] >> 21) & 127]));
      scale[g] = _mm256_set1_epi16(static_cast<int16_t>(2 * (aux[1] >> 28) + 1));
    }
    const float xd = half_to_float(x[i].d);
    for (int t = 0; t < NT; ++t) {
      const BlockQ8K& yb = y[t][i];
      __m256i acc = _mm256_setzero_si256();
      for (int g = 0; g < kQK_K / 32; ++g) {
        const __m256i y8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb.qs + 32 * g));
        const __m256i ys = _mm256_sign_epi8(y8, signs[g]);  // |q8| <= 127: no overflow
        // |maddubs lane| <= 2·43·127 and the scale <= 31: the madd stays far inside int32.
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(grid[g], ys), scale[g]));
      }
      sumf[t] += xd * yb.d * hsum_i32(acc);
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = 0.125f * sumf[t];
}

// One row: each group is used as soon as it is gathered, so nothing of the block is kept
// (the shared form holds 24 vectors, more than there are registers).
V4_AVX2 float dot_iq2_xxs(const BlockIQ2XXS* x, const BlockQ8K* y, int64_t nb) {
  const uint64_t* sign = avx2::iq2_sign_multipliers();
  float sumf = 0;
  for (int64_t i = 0; i < nb; ++i) {
    __m256i acc = _mm256_setzero_si256();
    for (int g = 0; g < kQK_K / 32; ++g) {
      uint32_t aux[2];
      std::memcpy(aux, x[i].qs + 4 * g, sizeof(aux));
      const __m256i grid =
          _mm256_setr_epi64x(static_cast<int64_t>(iq2xxs_grid[aux[0] & 0xFF]),
                             static_cast<int64_t>(iq2xxs_grid[(aux[0] >> 8) & 0xFF]),
                             static_cast<int64_t>(iq2xxs_grid[(aux[0] >> 16) & 0xFF]),
                             static_cast<int64_t>(iq2xxs_grid[aux[0] >> 24]));
      const __m256i signs = _mm256_setr_epi64x(static_cast<int64_t>(sign[aux[1] & 127]),
                                               static_cast<int64_t>(sign[(aux[1] >> 7) & 127]),
                                               static_cast<int64_t>(sign[(aux[1] >> 14) & 127]),
                                               static_cast<int64_t>(sign[(aux[1] >> 21) & 127]));
      const __m256i scale = _mm256_set1_epi16(static_cast<int16_t>(2 * (aux[1] >> 28) + 1));
      const __m256i y8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs + 32 * g));
      acc = _mm256_add_epi32(
          acc, _mm256_madd_epi16(_mm256_maddubs_epi16(grid, _mm256_sign_epi8(y8, signs)), scale));
    }
    sumf += half_to_float(x[i].d) * y[i].d * hsum_i32(acc);
  }
  return 0.125f * sumf;
}

// Q8_0 against four activation rows at once: the weight block is loaded and made absolute
// once, the four integer block sums are reduced together (exact), and each token's float
// scaling runs in its own SIMD lane with the single-row kernel's operations and order.
V4_AVX2 void dot_q8_0_x4(const BlockQ8_0* x, const BlockQ8_0* const* y, int64_t nb, float out[4]) {
  __m128 sumf = _mm_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    const __m256i ax = _mm256_sign_epi8(qx, qx);
    __m256i p[4];
    for (int t = 0; t < 4; ++t) {
      const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][i].qs));
      p[t] = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, qx)),
                               _mm256_set1_epi16(1));
    }
    const __m128i sumi = hsum4_i32(p);
    const __m128i dy = _mm_setr_epi16(
        static_cast<int16_t>(y[0][i].d), static_cast<int16_t>(y[1][i].d),
        static_cast<int16_t>(y[2][i].d), static_cast<int16_t>(y[3][i].d), 0, 0, 0, 0);
    const __m128 dxy = _mm_mul_ps(_mm_set1_ps(half_to_float(x[i].d)), _mm_cvtph_ps(dy));
    sumf = _mm_add_ps(sumf, _mm_mul_ps(_mm_cvtepi32_ps(sumi), dxy));
  }
  _mm_storeu_ps(out, sumf);
}

// Float weights (F32, F16, BF16) × F32 activations in the lane structure of
// float_dot_lanes.h: 32 products per step, rounded in float (as the scalar path), into four
// registers of eight float lanes; the tail (n mod 32) and the final tree run as in the reference.
template <class Load8, class Load1>
V4_AVX2 float dot_float(const float* a, int64_t n, Load8 load8, Load1 load1) {
  __m256 acc[4];
  for (__m256& v : acc) v = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + kFloatDotLanes <= n; i += kFloatDotLanes) {
    for (int q = 0; q < 4; ++q) {
      const __m256 p = _mm256_mul_ps(load8(i + 8 * q), _mm256_loadu_ps(a + i + 8 * q));
      acc[q] = _mm256_add_ps(acc[q], p);
    }
  }
  if (i == n) return simd::reduce_float_lanes(acc);
  alignas(32) float lanes[kFloatDotLanes];
  for (int q = 0; q < 4; ++q) _mm256_store_ps(lanes + 8 * q, acc[q]);
  return finish_float_dot(lanes, i, n, [&](int64_t j) { return load1(j) * a[j]; });
}

V4_AVX2 float dot_f16(const uint16_t* w, const float* a, int64_t n) {
  return dot_float(
      a, n,
      [w](int64_t i) V4_AVX2 {
        prefetch_weights(w + i);
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
      },
      [w](int64_t i) { return fp16_to_fp32(w[i]); });
}

V4_AVX2 float dot_bf16(const uint16_t* w, const float* a, int64_t n) {
  return dot_float(
      a, n,
      [w](int64_t i) V4_AVX2 {
        prefetch_weights(w + i);
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i));
        // A BF16 value is the top half of the F32 with the same bits.
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
      },
      [w](int64_t i) { return bf16_to_fp32(w[i]); });
}

V4_AVX2 float dot_f32(const float* w, const float* a, int64_t n) {
  return dot_float(
      a, n,
      [w](int64_t i) V4_AVX2 {
        prefetch_weights(w + i);
        return _mm256_loadu_ps(w + i);
      },
      [w](int64_t i) { return w[i]; });
}

// Up to four activation rows as blocks of their dot-product format; unused slots repeat the last
// row (each row's result is computed independently, so a repeat only costs time).
template <class Block>
std::array<const Block*, 4> activation_rows(const void* const* a, int rows = 4) {
  std::array<const Block*, 4> out;
  for (int k = 0; k < 4; ++k)
    out[static_cast<size_t>(k)] = static_cast<const Block*>(a[std::min(k, rows - 1)]);
  return out;
}

// The formats whose kernels live in their own files (vec_dot_avx2_kernels.h).
void mxfp4_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out) {
  dispatch_rows<Mxfp4Rows, BlockMXFP4, BlockQ8_0>(w, a, rows, nb, out);
}

avx2::RowsKernel rows_kernel(GgmlType t) {
  switch (t) {
    case GgmlType::MXFP4:
      return mxfp4_rows;
    case GgmlType::Q4_K:
      return avx2::q4_k_rows;
    case GgmlType::Q5_K:
      return avx2::q5_k_rows;
    case GgmlType::Q6_K:
      return avx2::q6_k_rows;
    case GgmlType::IQ2_XS:
      return avx2::iq2_xs_rows;
    case GgmlType::IQ1_S:
      return avx2::iq1_s_rows;
    case GgmlType::IQ1_M:
      return avx2::iq1_m_rows;
    default:
      return nullptr;
  }
}

}  // namespace

bool cpu_has_avx2() {
  // F16C comes with every AVX2 CPU in practice; requiring both keeps dot_f16 safe regardless.
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  return has;
}

bool has_avx2_dot(GgmlType t) {
  return t == GgmlType::Q8_0 || t == GgmlType::Q2_K || t == GgmlType::IQ2_XXS ||
         t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16 ||
         rows_kernel(t) != nullptr;
}

float vec_dot_avx2(GgmlType t, const void* w, const void* a, int64_t n) {
  const int64_t nb = n / ggml_type_traits(t).block_size;
  if (const avx2::RowsKernel kernel = rows_kernel(t)) {
    float out;
    kernel(w, &a, 1, nb, &out);
    return out;
  }
  const auto* f32 = static_cast<const float*>(a);
  switch (t) {
    case GgmlType::F32:
      return dot_f32(static_cast<const float*>(w), f32, n);
    case GgmlType::F16:
      return dot_f16(static_cast<const uint16_t*>(w), f32, n);
    case GgmlType::BF16:
      return dot_bf16(static_cast<const uint16_t*>(w), f32, n);
    case GgmlType::Q8_0:
      return dot_q8_0(static_cast<const BlockQ8_0*>(w), static_cast<const BlockQ8_0*>(a), nb);
    case GgmlType::Q2_K:
      return dot_q2_k(static_cast<const BlockQ2K*>(w), static_cast<const BlockQ8K*>(a), nb);
    case GgmlType::IQ2_XXS:
      return dot_iq2_xxs(static_cast<const BlockIQ2XXS*>(w), static_cast<const BlockQ8K*>(a), nb);
    default:
      return vec_dot(t, w, a, n);
  }
}

bool has_avx2_dot_x4(GgmlType t) {
  return t == GgmlType::Q8_0 || t == GgmlType::Q2_K || t == GgmlType::IQ2_XXS ||
         rows_kernel(t) != nullptr;
}

void vec_dot_avx2_x4(GgmlType t, const void* w, const void* const a[4], int64_t n, float out[4]) {
  const int64_t nb = n / ggml_type_traits(t).block_size;
  if (const avx2::RowsKernel kernel = rows_kernel(t)) return kernel(w, a, 4, nb, out);
  const auto q8_0 = activation_rows<BlockQ8_0>(a);
  const auto q8_k = activation_rows<BlockQ8K>(a);
  switch (t) {
    case GgmlType::Q8_0:
      return dot_q8_0_x4(static_cast<const BlockQ8_0*>(w), q8_0.data(), nb, out);
    case GgmlType::Q2_K:
      return dot_q2_k_rows<4>(static_cast<const BlockQ2K*>(w), q8_k.data(), nb, out);
    case GgmlType::IQ2_XXS:
      return dot_iq2_xxs_rows<4>(static_cast<const BlockIQ2XXS*>(w), q8_k.data(), nb, out);
    default:
      for (int k = 0; k < 4; ++k) out[k] = vec_dot_avx2(t, w, a[k], n);
      return;
  }
}

void vec_dot_avx2_few(GgmlType t, const void* w, const void* const* a, int rows, int64_t n,
                      float* out) {
  const int64_t nb = n / ggml_type_traits(t).block_size;
  if (const avx2::RowsKernel kernel = rows_kernel(t)) return kernel(w, a, rows, nb, out);
  const auto q8_k = activation_rows<BlockQ8K>(a, rows);
  switch (t) {
    case GgmlType::Q8_0: {
      // The Q8_0 kernel is cheap per row: run four lanes, the spare ones on a repeated row.
      const auto q8_0 = activation_rows<BlockQ8_0>(a, rows);
      float four[4];
      dot_q8_0_x4(static_cast<const BlockQ8_0*>(w), q8_0.data(), nb, four);
      std::copy_n(four, rows, out);
      return;
    }
    case GgmlType::Q2_K:
      return rows == 2 ? dot_q2_k_rows<2>(static_cast<const BlockQ2K*>(w), q8_k.data(), nb, out)
                       : dot_q2_k_rows<3>(static_cast<const BlockQ2K*>(w), q8_k.data(), nb, out);
    case GgmlType::IQ2_XXS:
      return rows == 2
                 ? dot_iq2_xxs_rows<2>(static_cast<const BlockIQ2XXS*>(w), q8_k.data(), nb, out)
                 : dot_iq2_xxs_rows<3>(static_cast<const BlockIQ2XXS*>(w), q8_k.data(), nb, out);
    default:
      for (int k = 0; k < rows; ++k) out[k] = vec_dot_avx2(t, w, a[k], n);
      return;
  }
}

float vec_dot_best(GgmlType t, const void* w, const void* a, int64_t n) {
  if (has_avx512_dot(t) && cpu_has_avx512()) {
    float out;
    vec_dot_avx512_rows(t, w, &a, 1, n, &out);
    return out;
  }
  if (has_avx2_dot(t) && cpu_has_avx2()) return vec_dot_avx2(t, w, a, n);
  return vec_dot(t, w, a, n);
}

}  // namespace v4::kernels
