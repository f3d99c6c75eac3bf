// Row groups for IQ2_XXS and Q2_K (256-value blocks, Q8_K activations) on AVX-512 VNNI. A group
// of 16 rows is decoded once into int8 values laid out one row per 32-bit lane, and every token
// then costs one VNNI dot per four values for all 16 rows, with no horizontal reduction: the
// row kernels' per-token sign, scale and reduction work is what bounded them.
//
// The integer sums per block are exact whatever their order, and the float steps are the
// reference's (kernels/cpu/vec_dot.cpp), per row lane, block by block, so results are
// bit-identical to vec_dot.
//   IQ2_XXS: values grid·sign in [-43, 43] are stored + 128 (VNNI's unsigned operand);
//     group g's sum is Σ (w + 128)·a − 128·Σ a (Σ a from the activation's bsums), times 2s + 1.
//   Q2_K: codes 0..3 times their sub-block scale (≤ 45) are stored as they are; the mins term
//     Σ min_j·bsums_j is one int16 dot per pair of sub-blocks.
#include "kernels/cpu/row_group_matmul_k.h"

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused source of unmasked
// operations, which -O3 reports as maybe-uninitialized (a known false positive of the headers).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/cpu/iq2xxs_decode_avx512.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/row_group_matmul.h"
#include "kernels/cpu/transpose16_avx512.h"

#define V4_AVX512_K \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vnni,f16c")))

namespace v4::kernels {
namespace {

constexpr int kRows = static_cast<int>(kRowGroupRows);
constexpr int kChunks = kQK_K / 4;  // four values per 32-bit lane

// One 256-value block of a 16-row group: chunk c holds values 4c..4c+3 of every row (row l in
// 32-bit lane l); `d` is the rows' fp16 scale as float (exact).
struct alignas(64) Iq2XxsGroupBlock {
  float d[kRows];
  int32_t scale[8][kRows];  // 2s + 1 of group g
  uint8_t q[kChunks][64];
};

struct alignas(64) Q2KGroupBlock {
  float d[kRows], dmin[kRows];
  int32_t mins[8][kRows];  // sub-blocks 2m and 2m + 1's mins as two int16
  uint8_t q[kChunks][64];
};

// The 16 rows' 256 values of one block (as bytes, row l at values[l]) into the chunk layout:
// four 16×16 transposes of 32-bit words (row l's chunk c goes to q[c], lane l).
V4_AVX512_K void transpose_rows(const uint8_t (*values)[kQK_K], uint8_t (*q)[64]) {
  for (int quarter = 0; quarter < 4; ++quarter) {
    __m512i r[kRows], t[kRows];
    for (int l = 0; l < kRows; ++l) r[l] = _mm512_load_si512(values[l] + 64 * quarter);
    avx512::transpose_16x16_u32(r, t);
    for (int c = 0; c < kRows; ++c) _mm512_store_si512(q[16 * quarter + c], t[c]);
  }
}

V4_AVX512_K void pack_iq2_xxs(const MatrixView& w, int64_t r0, int64_t nb, Iq2XxsGroupBlock* out) {
  const avx512::Iq2XxsTables tables = avx512::iq2xxs_tables();
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  alignas(64) uint8_t values[kRows][kQK_K];
  for (int64_t b = 0; b < nb; ++b) {
    for (int l = 0; l < kRows; ++l) {
      const BlockIQ2XXS& x =
          reinterpret_cast<const BlockIQ2XXS*>(w.data + (r0 + l) * w.row_bytes)[b];
      __m512i grid[4];
      uint64_t masks[4];
      avx512::iq2xxs_grid_and_signs(tables, x, grid, masks);
      for (int p = 0; p < 4; ++p) {
        const __m512i v = _mm512_mask_sub_epi8(grid[p], _cvtu64_mask64(masks[p]),
                                               _mm512_setzero_si512(), grid[p]);
        _mm512_store_si512(values[l] + 64 * p, _mm512_xor_si512(v, bias));
      }
      out[b].d[l] = _cvtsh_ss(x.d);
      for (int g = 0; g < 8; ++g) {
        uint32_t aux;
        std::memcpy(&aux, x.qs + 4 * g + 2, sizeof(aux));
        out[b].scale[g][l] = static_cast<int32_t>(2 * (aux >> 28) + 1);
      }
    }
    transpose_rows(values, out[b].q);
  }
}

// Q2_K positions: code plane k of byte i is position 32k + i (i < 32) or 128 + 32k + (i − 32).
V4_AVX512_K void pack_q2_k(const MatrixView& w, int64_t r0, int64_t nb, Q2KGroupBlock* out) {
  const __m512i m3 = _mm512_set1_epi8(3);
  __m512i scale_index[4];  // byte i of plane k: sub-block (i < 32 ? 0 : 8) + 2k + (i % 32) / 16
  for (int k = 0; k < 4; ++k) {
    alignas(64) uint8_t idx[64];
    for (int i = 0; i < 64; ++i)
      idx[i] = static_cast<uint8_t>((i < 32 ? 0 : 8) + 2 * k + i % 32 / 16);
    scale_index[k] = _mm512_load_si512(idx);
  }
  alignas(64) uint8_t values[kRows][kQK_K];
  for (int64_t b = 0; b < nb; ++b) {
    for (int l = 0; l < kRows; ++l) {
      const BlockQ2K& x = reinterpret_cast<const BlockQ2K*>(w.data + (r0 + l) * w.row_bytes)[b];
      const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
      const __m512i scales = _mm512_castsi128_si512(_mm_and_si128(sc, _mm_set1_epi8(0xF)));
      const __m512i q = _mm512_loadu_si512(x.qs);
      for (int k = 0; k < 4; ++k) {
        const __m512i codes = _mm512_and_si512(_mm512_srli_epi16(q, 2 * k), m3);
        const __m512i s = _mm512_permutexvar_epi8(scale_index[k], scales);
        // code · s for code in 0..3: s where bit 0 is set, plus 2s where bit 1 is.
        __m512i v = _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(codes, _mm512_set1_epi8(1)), s);
        v = _mm512_mask_add_epi8(v, _mm512_test_epi8_mask(codes, _mm512_set1_epi8(2)), v,
                                 _mm512_add_epi8(s, s));
        _mm256_store_si256(reinterpret_cast<__m256i*>(values[l] + 32 * k),
                           _mm512_castsi512_si256(v));
        _mm256_store_si256(reinterpret_cast<__m256i*>(values[l] + 128 + 32 * k),
                           _mm512_extracti64x4_epi64(v, 1));
      }
      out[b].d[l] = _cvtsh_ss(x.d);
      out[b].dmin[l] = _cvtsh_ss(x.dmin);
      for (int m = 0; m < 8; ++m) {
        out[b].mins[m][l] = (x.scales[2 * m] >> 4) | ((x.scales[2 * m + 1] >> 4) << 16);
      }
    }
    transpose_rows(values, out[b].q);
  }
}

V4_AVX512_K inline __m512i broadcast4(const int8_t* p) {
  int32_t four;
  std::memcpy(&four, p, sizeof(four));
  return _mm512_set1_epi32(four);
}

// Up to kTokenTile tokens against one packed IQ2_XXS group: lane l of y[t] is row l's result.
template <int NT>
struct Iq2XxsTokens {
  V4_AVX512_K static void run(const Iq2XxsGroupBlock* g, int64_t nb, const BlockQ8K* const* a,
                              float* const* y) {
    __m512 sumf[NT];
    for (__m512& s : sumf) s = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      __m512i bsum[NT];
      for (__m512i& s : bsum) s = _mm512_setzero_si512();
      for (int gi = 0; gi < 8; ++gi) {
        __m512i acc[NT];
        for (__m512i& s : acc) s = _mm512_setzero_si512();
        for (int k = 0; k < 8; ++k) {
          const int c = 8 * gi + k;
          const __m512i wq = _mm512_load_si512(g[b].q[c]);
          for (int t = 0; t < NT; ++t) {
            acc[t] = _mm512_dpbusd_epi32(acc[t], wq, broadcast4(a[t][b].qs + 4 * c));
          }
        }
        const __m512i ls = _mm512_load_si512(g[b].scale[gi]);
        for (int t = 0; t < NT; ++t) {
          const int32_t offset = 128 * (a[t][b].bsums[2 * gi] + a[t][b].bsums[2 * gi + 1]);
          const __m512i sumi = _mm512_sub_epi32(acc[t], _mm512_set1_epi32(offset));
          bsum[t] = _mm512_add_epi32(bsum[t], _mm512_mullo_epi32(sumi, ls));
        }
      }
      // d = d_w · d_a, then sumf += d · bsum: the reference's operations.
      const __m512 wd = _mm512_load_ps(g[b].d);
      for (int t = 0; t < NT; ++t) {
        const __m512 d = _mm512_mul_ps(wd, _mm512_set1_ps(a[t][b].d));
        sumf[t] = _mm512_add_ps(sumf[t], _mm512_mul_ps(d, _mm512_cvtepi32_ps(bsum[t])));
      }
    }
    for (int t = 0; t < NT; ++t)
      _mm512_storeu_ps(y[t], _mm512_mul_ps(_mm512_set1_ps(0.125f), sumf[t]));
  }
};

template <int NT>
struct Q2KTokens {
  V4_AVX512_K static void run(const Q2KGroupBlock* g, int64_t nb, const BlockQ8K* const* a,
                              float* const* y) {
    __m512 sumf[NT];
    for (__m512& s : sumf) s = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      __m512i isum[NT], summs[NT];
      for (int t = 0; t < NT; ++t) isum[t] = summs[t] = _mm512_setzero_si512();
      for (int c = 0; c < kChunks; ++c) {
        const __m512i wq = _mm512_load_si512(g[b].q[c]);
        for (int t = 0; t < NT; ++t) {
          isum[t] = _mm512_dpbusd_epi32(isum[t], wq, broadcast4(a[t][b].qs + 4 * c));
        }
      }
      for (int m = 0; m < 8; ++m) {
        const __m512i mins = _mm512_load_si512(g[b].mins[m]);
        for (int t = 0; t < NT; ++t) {
          int32_t pair;
          std::memcpy(&pair, a[t][b].bsums + 2 * m, sizeof(pair));
          summs[t] = _mm512_dpwssd_epi32(summs[t], mins, _mm512_set1_epi32(pair));
        }
      }
      // dall = d_a · d, dmin = d_a · dmin; sumf += dall·isum − dmin·summs, as the reference.
      const __m512 wd = _mm512_load_ps(g[b].d), wmin = _mm512_load_ps(g[b].dmin);
      for (int t = 0; t < NT; ++t) {
        const __m512 ad = _mm512_set1_ps(a[t][b].d);
        const __m512 dall = _mm512_mul_ps(ad, wd), dmin = _mm512_mul_ps(ad, wmin);
        const __m512 term = _mm512_sub_ps(_mm512_mul_ps(dall, _mm512_cvtepi32_ps(isum[t])),
                                          _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(summs[t])));
        sumf[t] = _mm512_add_ps(sumf[t], term);
      }
    }
    for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y[t], sumf[t]);
  }
};

constexpr int kTokenTile = 8;

template <class Block, template <int> class Tokens, int... NT>
void token_tile(int count, std::integer_sequence<int, NT...>, const Block* g, int64_t nb,
                const BlockQ8K* const* a, float* const* out) {
  ((count == NT + 1 ? Tokens<NT + 1>::run(g, nb, a, out) : void()), ...);
}

template <class Block, template <int> class Tokens, class Pack>
void run_groups(const MatrixView& w, const uint8_t* xq, int64_t n_tokens, float* y,
                int64_t y_stride, int64_t row_begin, int64_t row_end, Pack pack) {
  const int64_t nb = w.cols / kQK_K;
  const size_t act_bytes = activation_row_bytes(w.type, w.cols);
  // Per-thread scratch: one packed group (about 4.7 KiB per block of 256 columns).
  thread_local std::vector<Block> group;
  group.resize(static_cast<size_t>(nb));
  for (int64_t r0 = row_begin; r0 + kRowGroupRows <= row_end; r0 += kRowGroupRows) {
    pack(w, r0, nb, group.data());
    for (int64_t t = 0; t < n_tokens; t += kTokenTile) {
      const int count = static_cast<int>(std::min<int64_t>(kTokenTile, n_tokens - t));
      const BlockQ8K* a[kTokenTile];
      float* out[kTokenTile];
      for (int k = 0; k < count; ++k) {
        a[k] = reinterpret_cast<const BlockQ8K*>(xq + (t + k) * act_bytes);
        out[k] = y + (t + k) * y_stride + r0;
      }
      token_tile<Block, Tokens>(count, std::make_integer_sequence<int, kTokenTile>{}, group.data(),
                                nb, a, out);
    }
  }
}

}  // namespace

bool row_groups_k_format(GgmlType t) { return t == GgmlType::IQ2_XXS || t == GgmlType::Q2_K; }

void matmul_row_groups_k(const MatrixView& w, const uint8_t* xq, int64_t n_tokens, float* y,
                         int64_t y_stride, int64_t row_begin, int64_t row_end) {
  if (w.type == GgmlType::IQ2_XXS) {
    return run_groups<Iq2XxsGroupBlock, Iq2XxsTokens>(w, xq, n_tokens, y, y_stride, row_begin,
                                                      row_end, pack_iq2_xxs);
  }
  run_groups<Q2KGroupBlock, Q2KTokens>(w, xq, n_tokens, y, y_stride, row_begin, row_end, pack_q2_k);
}

}  // namespace v4::kernels
