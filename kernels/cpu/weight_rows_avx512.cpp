// Q8_0 and MXFP4 weights, four rows against a few Q8_0 activation rows (kernels/cpu/matmul.cpp
// runs decode steps, speculative verification and small batches through them).

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused source of unmasked
// operations, which -O3 reports as maybe-uninitialized (a known false positive of the headers).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "kernels/cpu/weight_rows_avx512.h"

#include <immintrin.h>

#include "kernels/cpu/blocks32_avx512.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/vec_dot_avx2_kernels.h"

#define V4_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vnni,f16c")))

namespace v4::kernels {
namespace {

using avx2::four_scales;
using avx512::activations_two;
using avx512::block_sums;

// How the kernel below reads the one-scale 32-value formats: two blocks' values plus kBias
// (unsigned bytes for VNNI) and four blocks' scales.
struct Q8_0Biased {
  using Block = BlockQ8_0;
  static constexpr GgmlType kType = GgmlType::Q8_0;
  static constexpr int kBias = 128;  // a signed byte plus 128: its bits with the top one flipped
  V4_AVX512 static __m512i two(const BlockQ8_0* x) {
    return _mm512_xor_si512(activations_two(x), _mm512_set1_epi8(static_cast<char>(0x80)));
  }
  V4_AVX512 static __m128 scales(const BlockQ8_0* x) { return four_scales(x); }
};

struct Mxfp4Biased {
  using Block = BlockMXFP4;
  static constexpr GgmlType kType = GgmlType::MXFP4;
  static constexpr int kBias = 12;  // the doubled E2M1 values are -12..12
  V4_AVX512 static __m512i two(const BlockMXFP4* x) {
    return _mm512_add_epi8(avx512::mxfp4_two(x), _mm512_set1_epi8(kBias));
  }
  static __m128 scales(const BlockMXFP4* x) { return avx512::mxfp4_four_scales(x); }
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
        const __m128 ys = four_scales(yt);
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
      // The last nb mod 4 blocks, one at a time: the reference on one block is 0 + its term,
      // which is the term (a -0 term gives +0, and adding either to a sum never -0 is the same).
      for (int64_t b = i; b < nb; ++b) {
        for (int r = 0; r < NR; ++r) sumf[r] += vec_dot(Format::kType, &x[r][b], &y[t][b], kQK8_0);
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
