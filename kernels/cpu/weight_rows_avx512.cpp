// Q8_0 and MXFP4 weights, four rows against a few Q8_0 activation rows (kernels/cpu/matmul.cpp
// runs decode steps, speculative verification and small batches through them).

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused source of unmasked
// operations, which -O3 reports as maybe-uninitialized (a known false positive of the headers).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "kernels/cpu/weight_rows_avx512.h"

#include <immintrin.h>

#include "core/half.h"
#include "kernels/cpu/q8_blocks_avx512.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_tables.h"

#define V4_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vnni,f16c")))

namespace v4::kernels {
namespace {

using avx512::activations_two;
using avx512::block_sums;

// The one-token row kernel's view of the one-scale 32-value formats: two blocks' values plus
// kBias (unsigned bytes for VNNI), four blocks' scales, and one block's exact integer sum.
struct Q8_0Biased {
  using Block = BlockQ8_0;
  static constexpr int kBias = 128;  // a signed byte plus 128: its bits with the top one flipped
  V4_AVX512 static __m512i two(const BlockQ8_0* x) {
    return _mm512_xor_si512(activations_two(x), _mm512_set1_epi8(static_cast<char>(0x80)));
  }
  V4_AVX512 static __m128 scales(const BlockQ8_0* x) {
    return _mm_cvtph_ps(_mm_setr_epi16(static_cast<int16_t>(x[0].d), static_cast<int16_t>(x[1].d),
                                       static_cast<int16_t>(x[2].d), static_cast<int16_t>(x[3].d),
                                       0, 0, 0, 0));
  }
  static float scale(const BlockQ8_0& x) { return fp16_to_fp32(x.d); }
  static int block_sum(const BlockQ8_0& x, const BlockQ8_0& y) {
    int sumi = 0;
    for (int j = 0; j < kQK8_0; ++j) sumi += x.qs[j] * y.qs[j];
    return sumi;
  }
};

// MXFP4's doubled E2M1 values (kvalues_mxfp4) plus 12, as a 16-entry table: 0..24. (The tests
// check every code against the reference.)
struct Mxfp4BiasedTable {
  alignas(16) uint8_t values[16];
};

constexpr Mxfp4BiasedTable make_mxfp4_biased() {
  constexpr int8_t doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  Mxfp4BiasedTable t{};
  for (int i = 0; i < 16; ++i) t.values[i] = static_cast<uint8_t>(doubled[i] + 12);
  return t;
}

constexpr Mxfp4BiasedTable kMxfp4Biased = make_mxfp4_biased();

struct Mxfp4Biased {
  using Block = BlockMXFP4;
  static constexpr int kBias = 12;
  V4_AVX512 static __m512i two(const BlockMXFP4* x) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m256i q = _mm256_setr_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[0].qs)),
                                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[1].qs)));
    const __m512i split =
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(q, m4)),
                           _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), 1);  // lo0 lo1 hi0 hi1
    const __m512i codes = _mm512_shuffle_i64x2(split, split, _MM_SHUFFLE(3, 1, 2, 0));
    return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_load_si128(
                                   reinterpret_cast<const __m128i*>(kMxfp4Biased.values))),
                               codes);
  }
  V4_AVX512 static __m128 scales(const BlockMXFP4* x) {
    return _mm_setr_ps(e8m0_to_fp32_half(x[0].e), e8m0_to_fp32_half(x[1].e),
                       e8m0_to_fp32_half(x[2].e), e8m0_to_fp32_half(x[3].e));
  }
  static float scale(const BlockMXFP4& x) { return e8m0_to_fp32_half(x.e); }
  static int block_sum(const BlockMXFP4& x, const BlockQ8_0& y) {
    int sumi = 0;
    for (int j = 0; j < kQK_MXFP4 / 2; ++j) {
      sumi += y.qs[j] * kvalues_mxfp4[x.qs[j] & 0xF];
      sumi += y.qs[j + kQK_MXFP4 / 2] * kvalues_mxfp4[x.qs[j] >> 4];
    }
    return sumi;
  }
};

// Q8_0 or MXFP4 weights, NR rows against NT Q8_0 activation rows (a decode step's tokens): each
// step decodes four blocks of every row once for all NT activation rows, and reads each
// activation block once for all NR rows; each (row, token) float sum runs in a SIMD lane, so the
// chains of dependent adds advance together (one row's chain bounds the single-row kernels at
// one token). Weight values plus kBias are unsigned (exact for every byte), so VNNI gives
// Σ(w + bias)·y, and minus bias·Σy that is the block's exact integer sum; the float terms
// sum·(d_x·d_y) are the reference's and go into each sum block by block.
template <class Format, int NR, int NT>
struct WeightRowsTokens {
  using Block = typename Format::Block;
  V4_AVX512 static void run(const Block* const* x, const BlockQ8_0* const* y, int64_t nb,
                            float* out) {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i ones = _mm512_set1_epi8(1);
    const __m128i bias = _mm_set1_epi32(Format::kBias);
    __m128 lanes[NT];  // token t: row r's sum in lane r
    for (__m128& l : lanes) l = _mm_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
      __m512i w[NR][2];
      __m128 ws[NR];
      for (int r = 0; r < NR; ++r) {
        const Block* xr = x[r] + i;
        // The same blocks of the row four rows on: the next call's. Four interleaved row
        // streams outrun the hardware prefetcher from DRAM (Q8_0, one thread, 8192×4096: 3.0 ms
        // without this, 1.7 with it, 2.4 for the one-row AVX2 kernel).
        const char* next = reinterpret_cast<const char*>(xr + 4 * nb);
        _mm_prefetch(next, _MM_HINT_T0);
        _mm_prefetch(next + 64, _MM_HINT_T0);
        _mm_prefetch(next + 128, _MM_HINT_T0);
        w[r][0] = Format::two(xr);
        w[r][1] = Format::two(xr + 2);
        ws[r] = Format::scales(xr);
      }
      for (int t = 0; t < NT; ++t) {
        const BlockQ8_0* yt = y[t] + i;
        const __m512i y01 = activations_two(yt), y23 = activations_two(yt + 2);
        const __m128i offset = _mm_mullo_epi32(
            block_sums(_mm512_dpbusd_epi32(zero, ones, y01), _mm512_dpbusd_epi32(zero, ones, y23)),
            bias);
        const __m128 ys = Q8_0Biased::scales(yt);
        __m128 terms[4];
        for (int r = 0; r < NR; ++r) {
          const __m128i sums = _mm_sub_epi32(block_sums(_mm512_dpbusd_epi32(zero, w[r][0], y01),
                                                        _mm512_dpbusd_epi32(zero, w[r][1], y23)),
                                             offset);
          terms[r] = _mm_mul_ps(_mm_cvtepi32_ps(sums), _mm_mul_ps(ws[r], ys));
        }
        for (int r = NR; r < 4; ++r) terms[r] = terms[NR - 1];
        _MM_TRANSPOSE4_PS(terms[0], terms[1], terms[2], terms[3]);  // terms[b]: block b, by row
        for (const __m128 block_terms : terms) lanes[t] = _mm_add_ps(lanes[t], block_terms);
      }
    }
    for (int t = 0; t < NT; ++t) {
      alignas(16) float sumf[4];
      _mm_store_ps(sumf, lanes[t]);
      for (int64_t b = i; b < nb; ++b) {  // the last nb mod 4 blocks, one at a time
        const float dy = fp16_to_fp32(y[t][b].d);
        for (int r = 0; r < NR; ++r)
          sumf[r] += Format::block_sum(x[r][b], y[t][b]) * (Format::scale(x[r][b]) * dy);
      }
      for (int r = 0; r < NR; ++r) out[r * NT + t] = sumf[r];
    }
  }
};

template <class Format, int NR>
V4_AVX512 void weight_rows_by_tokens(const typename Format::Block* const* x,
                                     const BlockQ8_0* const* y, int tokens, int64_t nb,
                                     float* out) {
  switch (tokens) {
    case 1:
      return WeightRowsTokens<Format, NR, 1>::run(x, y, nb, out);
    case 2:
      return WeightRowsTokens<Format, NR, 2>::run(x, y, nb, out);
    default:
      return WeightRowsTokens<Format, NR, 3>::run(x, y, nb, out);
  }
}

template <class Format>
V4_AVX512 void weight_rows_tokens(const void* const* w, int rows, const void* const* a, int tokens,
                                  int64_t n, float* out) {
  using Block = typename Format::Block;
  const Block* x[4];
  for (int r = 0; r < 4; ++r) x[r] = static_cast<const Block*>(w[r < rows ? r : rows - 1]);
  const BlockQ8_0* y[3];
  for (int t = 0; t < 3; ++t) y[t] = static_cast<const BlockQ8_0*>(a[t < tokens ? t : tokens - 1]);
  const int64_t nb = n / kQK8_0;
  switch (rows) {
    case 1:
      return weight_rows_by_tokens<Format, 1>(x, y, tokens, nb, out);
    case 2:
      return weight_rows_by_tokens<Format, 2>(x, y, tokens, nb, out);
    case 3:
      return weight_rows_by_tokens<Format, 3>(x, y, tokens, nb, out);
    default:
      return weight_rows_by_tokens<Format, 4>(x, y, tokens, nb, out);
  }
}

}  // namespace

bool has_avx512_weight_rows(GgmlType t) { return t == GgmlType::Q8_0 || t == GgmlType::MXFP4; }

void vec_dot_avx512_weight_rows(GgmlType t, const void* const* w, int rows, const void* const* a,
                                int tokens, int64_t n, float* out) {
  switch (t) {
    case GgmlType::Q8_0:
      return weight_rows_tokens<Q8_0Biased>(w, rows, a, tokens, n, out);
    case GgmlType::MXFP4:
      return weight_rows_tokens<Mxfp4Biased>(w, rows, a, tokens, n, out);
    default:
      return;
  }
}

}  // namespace v4::kernels
