#include "kernels/cpu/vec_dot_avx512.h"

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused source of unmasked
// operations, which -O3 reports as maybe-uninitialized (a known false positive of the headers).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <cstdlib>
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/blocks32_avx512.h"
#include "kernels/cpu/float_dot_lanes.h"
#include "kernels/cpu/float_dot_lanes_simd.h"
#include "kernels/cpu/iq2xxs_decode_avx512.h"
#include "kernels/cpu/prefetch.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_tables.h"
#include "kernels/cpu/rows_dispatch.h"
#include "kernels/cpu/vec_dot_avx2_kernels.h"

// VBMI gives the byte permutes (sign-index extraction, the 128-entry sign table in one
// instruction), VNNI the int8 dot of the 32-value formats; DQ and VL come with every such CPU
// and are used for 256-bit halves.
#define V4_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vnni,f16c")))

namespace v4::kernels {
namespace {

struct Iq2XxsScaleIndex {
  alignas(64) uint16_t words[4][32];
};

constexpr Iq2XxsScaleIndex make_iq2xxs_scale_index() {
  Iq2XxsScaleIndex s{};
  for (int p = 0; p < 4; ++p) {
    for (int k = 0; k < 32; ++k)
      s.words[p][k] = static_cast<uint16_t>((2 * (2 * p + k / 16) + 1) * 2);
  }
  return s;
}

constexpr Iq2XxsScaleIndex kIq2XxsScaleIndex = make_iq2xxs_scale_index();

// IQ2_XXS (decoding: kernels/cpu/iq2xxs_decode_avx512.h): the sign masks negate activations
// directly. Integer sums per block are exact; the float scaling is the reference's, in its order.
template <int NT>
struct Iq2XxsRows {
  V4_AVX512 static void run(const BlockIQ2XXS* x, const BlockQ8K* const* y, int64_t nb,
                            float* out) {
    const avx512::Iq2XxsTables tables = avx512::iq2xxs_tables();
    // Scale of group g: the low u16 of u32 lane 2g+1 after the shift below; pair p spreads
    // group 2p over words 0..15 and group 2p+1 over words 16..31.
    __m512i scale_index[4];
    for (int p = 0; p < 4; ++p) scale_index[p] = _mm512_load_si512(kIq2XxsScaleIndex.words[p]);
    const __m512i zero = _mm512_setzero_si512();
    float sumf[NT] = {};
    for (int64_t i = 0; i < nb; ++i) {
      __m512i grid[4], scale[4];
      uint64_t masks[4];
      avx512::iq2xxs_grid_and_signs(tables, x[i], grid, masks);
      // 2·scale + 1 in every u32 lane (the even lanes are unused).
      const __m512i q = _mm512_loadu_si512(x[i].qs);
      const __m512i scales =
          _mm512_or_si512(_mm512_slli_epi32(_mm512_srli_epi32(q, 28), 1), _mm512_set1_epi32(1));
      for (int p = 0; p < 4; ++p) scale[p] = _mm512_permutexvar_epi16(scale_index[p], scales);
      const float xd = _cvtsh_ss(x[i].d);
      for (int t = 0; t < NT; ++t) {
        const BlockQ8K& yb = y[t][i];
        __m512i acc = zero;
        for (int p = 0; p < 4; ++p) {
          const __m512i y8 = _mm512_loadu_si512(yb.qs + 64 * p);
          const __m512i ys = _mm512_mask_sub_epi8(y8, _cvtu64_mask64(masks[p]), zero, y8);
          // |maddubs lane| <= 2·43·127 and the scale <= 31: the madd stays inside int32.
          acc =
              _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(grid[p], ys), scale[p]));
        }
        sumf[t] += xd * yb.d * _mm512_reduce_add_epi32(acc);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = 0.125f * sumf[t];
  }
};

// Q2_K: the 64 code bytes hold four 2-bit planes; plane k covers positions 32k..32k+31 (bytes
// 0..31) and 128+32k.. (bytes 32..63), so one 512-bit shift-and-mask yields 64 codes and their
// activations are two 256-bit loads. Sub-block scales reach the int16 lanes by one permute.
template <int NT>
struct Q2KRows {
  V4_AVX512 static void run(const BlockQ2K* x, const BlockQ8K* const* y, int64_t nb, float* out) {
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0xF);
    __m512i scale_index[4];
    for (int k = 0; k < 4; ++k) {
      alignas(64) uint16_t words[32];
      for (int l = 0; l < 32; ++l) {
        words[l] = static_cast<uint16_t>(2 * k + (l / 8) % 2 + (l >= 16 ? 8 : 0));
      }
      scale_index[k] = _mm512_load_si512(words);
    }
    float sumf[NT] = {};
    for (int64_t i = 0; i < nb; ++i) {
      const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales));
      const __m512i scales = _mm512_zextsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(sc, m4)));
      const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
      const __m512i q = _mm512_loadu_si512(x[i].qs);
      __m512i codes[4], scale[4];
      for (int k = 0; k < 4; ++k) {
        codes[k] = _mm512_and_si512(_mm512_srli_epi16(q, 2 * k), m3);
        scale[k] = _mm512_permutexvar_epi16(scale_index[k], scales);
      }
      const float xd = _cvtsh_ss(x[i].d), xdmin = _cvtsh_ss(x[i].dmin);
      for (int t = 0; t < NT; ++t) {
        const BlockQ8K& yb = y[t][i];
        const float dall = yb.d * xd;
        const float dmin = yb.d * xdmin;
        __m512i acc = _mm512_setzero_si512();
        for (int k = 0; k < 4; ++k) {
          const __m512i y8 = _mm512_inserti64x4(
              _mm512_castsi256_si512(
                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb.qs + 32 * k))),
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb.qs + 128 + 32 * k)), 1);
          acc = _mm512_add_epi32(acc,
                                 _mm512_madd_epi16(_mm512_maddubs_epi16(codes[k], y8), scale[k]));
        }
        // |bsum| <= 16·127 and min <= 15: the products and their sums stay inside int32.
        const __m256i summs =
            _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb.bsums)), mins);
        const int32_t isum = _mm512_reduce_add_epi32(acc);
        const int32_t msum = _mm512_reduce_add_epi32(_mm512_zextsi256_si512(summs));
        sumf[t] += dall * isum - dmin * msum;
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = sumf[t];
  }
};

V4_AVX512 inline __m512i signed_dot(__m512i w, __m512i y) {
  const __m512i ys = _mm512_mask_sub_epi8(y, _mm512_movepi8_mask(w), _mm512_setzero_si512(), y);
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), ys);
}

// MXFP4 against NT Q8_0 rows: four blocks per step as two 512-bit registers of signed weight
// bytes. Each block's integer sum is exact (|weight| times the activation with the weight's sign,
// by VNNI's unsigned-by-signed dot; an activation byte is never -128, so the negation is exact
// too); the float terms sum·(2^(e-128)·d_y) are the reference's products and go into each row's
// sum block by block. (Matmuls take the four-row kernel below; this one serves single rows.)
template <int NT>
struct Mxfp4Rows {
  V4_AVX512 static void run(const BlockMXFP4* x, const BlockQ8_0* const* y, int64_t nb,
                            float* out) {
    float sumf[NT] = {};
    __m128 lanes = _mm_setzero_ps();  // NT > 1: row t's sum in lane t
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
      const __m512i w01 = avx512::mxfp4_two(x + i), w23 = avx512::mxfp4_two(x + i + 2);
      const __m128 ws = avx512::mxfp4_four_scales(x + i);
      __m128 terms[4];
      for (int t = 0; t < NT; ++t) {
        const BlockQ8_0* yt = y[t] + i;
        const __m128i sums = avx512::block_sums(signed_dot(w01, avx512::activations_two(yt)),
                                                signed_dot(w23, avx512::activations_two(yt + 2)));
        const __m128 ys = avx2::four_scales(yt);
        terms[t] = _mm_mul_ps(_mm_cvtepi32_ps(sums), _mm_mul_ps(ws, ys));
      }
      if constexpr (NT == 1) {
        alignas(16) float tb[4];
        _mm_store_ps(tb, terms[0]);
        for (float term : tb) sumf[0] += term;
      } else {
        for (int t = NT; t < 4; ++t) terms[t] = terms[NT - 1];
        _MM_TRANSPOSE4_PS(terms[0], terms[1], terms[2], terms[3]);  // terms[b]: block b, by row
        for (const __m128 block_terms : terms) lanes = _mm_add_ps(lanes, block_terms);
      }
    }
    if constexpr (NT > 1) {
      alignas(16) float tb[4];
      _mm_store_ps(tb, lanes);
      for (int t = 0; t < NT; ++t) sumf[t] = tb[t];
    }
    for (; i < nb; ++i) {  // the last nb mod 4 blocks, one at a time
      const __m512i w = _mm512_castsi256_si512(avx2::mxfp4_values(x[i], avx2::mxfp4_table()));
      const float xs = e8m0_to_fp32_half(x[i].e);
      for (int t = 0; t < NT; ++t) {
        const __m256i yi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][i].qs));
        // Only the low half is summed (lane 0 of block_sums); the high half is ignored.
        const __m128i sums = avx512::block_sums(signed_dot(w, _mm512_castsi256_si512(yi)), w);
        sumf[t] += static_cast<float>(_mm_cvtsi128_si32(sums)) * (xs * _cvtsh_ss(y[t][i].d));
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = sumf[t];
  }
};

// One float dot from its 32 lanes in two registers, after steps up to i: the fixed tree, or
// first the tail's products (product(j) for i <= j < n) into the lanes.
template <class Product>
V4_AVX512 float finish_float_lanes(__m512 lo, __m512 hi, int64_t i, int64_t n, Product product) {
  if (i == n) return simd::reduce_float_lanes(lo, hi);
  alignas(64) float lanes[kFloatDotLanes];
  _mm512_store_ps(lanes, lo);
  _mm512_store_ps(lanes + 16, hi);
  return finish_float_dot(lanes, i, n, product);
}

// Float weights (F32, F16, BF16): NR weight rows against one activation row in the lane
// structure of float_dot_lanes.h, each row's 32 lanes in two registers; 32 products per step
// and row. Several rows per call share the activation loads and give more independent adds.
template <int NR, class Load16, class Load1>
V4_AVX512 void dot_float_rows(const float* a, int64_t n, Load16 load16, Load1 load1, float* out) {
  __m512 acc[NR][2];
  for (auto& v : acc) v[0] = v[1] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + kFloatDotLanes <= n; i += kFloatDotLanes) {
    const __m512 x0 = _mm512_loadu_ps(a + i), x1 = _mm512_loadu_ps(a + i + 16);
    for (int k = 0; k < NR; ++k) {
      acc[k][0] = _mm512_add_ps(acc[k][0], _mm512_mul_ps(load16(k, i), x0));
      acc[k][1] = _mm512_add_ps(acc[k][1], _mm512_mul_ps(load16(k, i + 16), x1));
    }
  }
  for (int k = 0; k < NR; ++k) {
    out[k] = finish_float_lanes(acc[k][0], acc[k][1], i, n,
                                [&](int64_t j) { return load1(k, j) * a[j]; });
  }
}

// Float weights: one weight row against NT activation rows (F32). Each 32-value step of the row
// is loaded and widened once for all NT rows, and the weight row stays one memory stream; each
// activation row keeps its 32 lanes (float_dot_lanes.h) in two registers.
template <int NT>
struct FloatTokens {
  template <class Load16, class Load1>
  V4_AVX512 static void run(const float* const* a, int64_t n, Load16 load16, Load1 load1,
                            float* out) {
    __m512 acc[NT][2];
    for (auto& v : acc) v[0] = v[1] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + kFloatDotLanes <= n; i += kFloatDotLanes) {
      const __m512 w0 = load16(i), w1 = load16(i + 16);
      for (int t = 0; t < NT; ++t) {
        acc[t][0] = _mm512_add_ps(acc[t][0], _mm512_mul_ps(w0, _mm512_loadu_ps(a[t] + i)));
        acc[t][1] = _mm512_add_ps(acc[t][1], _mm512_mul_ps(w1, _mm512_loadu_ps(a[t] + i + 16)));
      }
    }
    for (int t = 0; t < NT; ++t) {
      out[t] = finish_float_lanes(acc[t][0], acc[t][1], i, n,
                                  [&](int64_t j) { return load1(j) * a[t][j]; });
    }
  }
};

template <class Load16, class Load1>
V4_AVX512 void dot_float_any_tokens(int tokens, const float* const* a, int64_t n, Load16 load16,
                                    Load1 load1, float* out) {
  switch (tokens) {
    case 1:
      return FloatTokens<1>::run(a, n, load16, load1, out);
    case 2:
      return FloatTokens<2>::run(a, n, load16, load1, out);
    case 3:
      return FloatTokens<3>::run(a, n, load16, load1, out);
    default:
      return FloatTokens<4>::run(a, n, load16, load1, out);
  }
}

template <class Load16, class Load1>
V4_AVX512 void dot_float_any_rows(int rows, const float* a, int64_t n, Load16 load16, Load1 load1,
                                  float* out) {
  switch (rows) {
    case 1:
      return dot_float_rows<1>(a, n, load16, load1, out);
    case 2:
      return dot_float_rows<2>(a, n, load16, load1, out);
    case 3:
      return dot_float_rows<3>(a, n, load16, load1, out);
    default:
      return dot_float_rows<4>(a, n, load16, load1, out);
  }
}

bool simd_capped_to_avx2() {
  const char* cap = std::getenv("V4_CPU_SIMD");
  return cap != nullptr && std::strcmp(cap, "avx2") == 0;
}

}  // namespace

bool cpu_has_avx512() {
  static const bool has =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni") &&
      __builtin_cpu_supports("f16c") && !simd_capped_to_avx2();
  return has;
}

bool has_avx512_dot(GgmlType t) {
  return t == GgmlType::IQ2_XXS || t == GgmlType::Q2_K || t == GgmlType::MXFP4;
}

void vec_dot_avx512_rows(GgmlType t, const void* w, const void* const* a, int rows, int64_t n,
                         float* out) {
  const int64_t nb = n / kQK_K;
  switch (t) {
    case GgmlType::MXFP4:
      return dispatch_rows<Mxfp4Rows, BlockMXFP4, BlockQ8_0>(w, a, rows, n / kQK_MXFP4, out);
    case GgmlType::IQ2_XXS:
      return dispatch_rows<Iq2XxsRows, BlockIQ2XXS, BlockQ8K>(w, a, rows, nb, out);
    case GgmlType::Q2_K:
      return dispatch_rows<Q2KRows, BlockQ2K, BlockQ8K>(w, a, rows, nb, out);
    default:
      return;
  }
}

bool has_avx512_float_rows(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16;
}

namespace {

// Calls use(load16, load1) with the loaders of float weight format t over the rows w: load16(k, i)
// reads 16 values of row k at i, widened to F32 (the dots call it only inside whole 32-value
// chunks, prefetching ahead), and load1(k, i) one value.
template <class Use>
V4_AVX512 void with_float_loads(GgmlType t, const void* const* w, Use use) {
  switch (t) {
    case GgmlType::F32: {
      const auto* r = reinterpret_cast<const float* const*>(w);
      return use(
          [r](int k, int64_t i) V4_AVX512 {
            prefetch_weights(r[k] + i);
            return _mm512_loadu_ps(r[k] + i);
          },
          [r](int k, int64_t i) { return r[k][i]; });
    }
    case GgmlType::F16: {
      const auto* r = reinterpret_cast<const uint16_t* const*>(w);
      return use(
          [r](int k, int64_t i) V4_AVX512 {
            prefetch_weights(r[k] + i);
            return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r[k] + i)));
          },
          [r](int k, int64_t i) { return fp16_to_fp32(r[k][i]); });
    }
    case GgmlType::BF16: {
      const auto* r = reinterpret_cast<const uint16_t* const*>(w);
      return use(
          [r](int k, int64_t i) V4_AVX512 {
            // A BF16 value is the top half of the F32 with the same bits.
            prefetch_weights(r[k] + i);
            const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r[k] + i));
            return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
          },
          [r](int k, int64_t i) { return bf16_to_fp32(r[k][i]); });
    }
    default:
      return;
  }
}

}  // namespace

V4_AVX512 void vec_dot_avx512_float_rows(GgmlType t, const void* const* w, int rows, const void* a,
                                         int64_t n, float* out) {
  const auto* x = static_cast<const float*>(a);
  with_float_loads(t, w, [&](auto load16, auto load1) V4_AVX512 {
    dot_float_any_rows(rows, x, n, load16, load1, out);
  });
}

V4_AVX512 void vec_dot_avx512_float_tokens(GgmlType t, const void* w, const void* const* a,
                                           int tokens, int64_t n, float* out) {
  const auto* const* x = reinterpret_cast<const float* const*>(a);
  with_float_loads(t, &w, [&](auto load16, auto load1) V4_AVX512 {
    dot_float_any_tokens(
        tokens, x, n, [&](int64_t i) V4_AVX512 { return load16(0, i); },
        [&](int64_t i) { return load1(0, i); }, out);
  });
}

}  // namespace v4::kernels
