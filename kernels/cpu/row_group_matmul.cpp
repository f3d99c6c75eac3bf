#include "kernels/cpu/row_group_matmul.h"

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused source of unmasked
// operations, which -O3 reports as maybe-uninitialized (a known false positive of the headers).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_tables.h"
#include "kernels/cpu/row_group_matmul_k.h"
#include "kernels/cpu/transpose16_avx512.h"
#include "kernels/cpu/vec_dot_avx2_kernels.h"
#include "kernels/cpu/vec_dot_avx512.h"

#define V4_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c")))

namespace v4::kernels {
namespace {

// One block of a 16-row group: the rows' scales as floats (fp16 and E8M0 convert exactly), then
// eight 64-byte chunks; chunk k holds values 4k..4k+3 of every row's block (row l in 32-bit lane
// l) as int8, each + 128 so that VNNI's unsigned operand carries the weights:
// Σ (w + 128)·a = Σ w·a + 128·Σ a, and 128·Σ a is subtracted per token and block (exact
// integers throughout).
struct GroupBlock {
  float d[kRowGroupRows];
  uint8_t q[8][64];
};
static_assert(sizeof(GroupBlock) == 64 + 512);

// A block's 32 values as int8 in position order.
V4_AVX512_VNNI inline __m256i block_values(GgmlType type, const uint8_t* row, int64_t b) {
  if (type == GgmlType::Q8_0) {
    return _mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(reinterpret_cast<const BlockQ8_0*>(row)[b].qs));
  }
  return avx2::mxfp4_values(reinterpret_cast<const BlockMXFP4*>(row)[b], avx2::mxfp4_table());
}

// Two blocks at a time: each row's 64 values (+128) are one register, and one 16×16 transpose
// of 32-bit words lays them out as the two blocks' 16 chunks. An odd last block is padded.
V4_AVX512_VNNI void pack_group(const MatrixView& w, int64_t r0, int64_t nb, GroupBlock* out) {
  const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < nb; b += 2) {
    const bool pair = b + 1 < nb;
    __m512i rows[kRowGroupRows], chunks[kRowGroupRows];
    for (int64_t l = 0; l < kRowGroupRows; ++l) {
      const uint8_t* row = w.data + (r0 + l) * w.row_bytes;
      const __m256i first = _mm256_xor_si256(block_values(w.type, row, b), bias);
      const __m256i second =
          pair ? _mm256_xor_si256(block_values(w.type, row, b + 1), bias) : _mm256_setzero_si256();
      rows[l] = _mm512_inserti64x4(_mm512_castsi256_si512(first), second, 1);
      for (int64_t k = 0; k < (pair ? 2 : 1); ++k) {
        out[b + k].d[l] =
            w.type == GgmlType::Q8_0
                ? _cvtsh_ss(reinterpret_cast<const BlockQ8_0*>(row)[b + k].d)
                : e8m0_to_fp32_half(reinterpret_cast<const BlockMXFP4*>(row)[b + k].e);
      }
    }
    avx512::transpose_16x16_u32(rows, chunks);
    for (int k = 0; k < 8; ++k) _mm512_storeu_si512(out[b].q[k], chunks[k]);
    if (!pair) continue;
    for (int k = 0; k < 8; ++k) _mm512_storeu_si512(out[b + 1].q[k], chunks[8 + k]);
  }
}

// 128·Σ a over every activation block of every token.
void activation_offsets(const uint8_t* xq, size_t act_bytes, int64_t n_tokens, int64_t nb,
                        int32_t* out) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    const auto* a = reinterpret_cast<const BlockQ8_0*>(xq + t * act_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      int32_t sum = 0;
      for (int j = 0; j < kQK8_0; ++j) sum += a[b].qs[j];
      out[t * nb + b] = 128 * sum;
    }
  }
}

// Tokens per pass over a packed group: each block's eight weight registers serve this many
// tokens (eight: the sums and the weights still fit the 32 registers).
constexpr int kTokenTile = 8;

// Up to kTokenTile tokens against one packed group: lane l of sumf[t] is row l's reference sum.
template <int NT>
V4_AVX512_VNNI void group_tokens(const GroupBlock* g, int64_t nb, const BlockQ8_0* const* a,
                                 const int32_t* const* offsets, float* const* y) {
  __m512 sumf[NT];
  for (__m512& s : sumf) s = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i w[8];
    for (int k = 0; k < 8; ++k) w[k] = _mm512_loadu_si512(g[b].q[k]);
    const __m512 wd = _mm512_loadu_ps(g[b].d);
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_0& ab = a[t][b];
      __m512i acc = _mm512_setzero_si512();
      for (int k = 0; k < 8; ++k) {
        int32_t four;
        std::memcpy(&four, ab.qs + 4 * k, sizeof(four));
        acc = _mm512_dpbusd_epi32(acc, w[k], _mm512_set1_epi32(four));
      }
      const __m512i sumi = _mm512_sub_epi32(acc, _mm512_set1_epi32(offsets[t][b]));
      // sumi · (d_w · d_a), then added: the reference's operations (MXFP4's d_a · d_w · sumi
      // is the same product), per row lane.
      const __m512 dxy = _mm512_mul_ps(wd, _mm512_set1_ps(_cvtsh_ss(ab.d)));
      sumf[t] = _mm512_add_ps(sumf[t], _mm512_mul_ps(_mm512_cvtepi32_ps(sumi), dxy));
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y[t], sumf[t]);
}

template <int... NT>
void group_token_tile(int count, std::integer_sequence<int, NT...>, const GroupBlock* g, int64_t nb,
                      const BlockQ8_0* const* a, const int32_t* const* off, float* const* out) {
  ((count == NT + 1 ? group_tokens<NT + 1>(g, nb, a, off, out) : void()), ...);
}

void group_all_tokens(const GroupBlock* g, int64_t nb, const uint8_t* xq, size_t act_bytes,
                      const int32_t* offsets, int64_t n_tokens, float* y, int64_t y_stride,
                      int64_t r0) {
  for (int64_t t = 0; t < n_tokens; t += kTokenTile) {
    const int count = static_cast<int>(std::min<int64_t>(kTokenTile, n_tokens - t));
    const BlockQ8_0* a[kTokenTile];
    const int32_t* off[kTokenTile];
    float* out[kTokenTile];
    for (int k = 0; k < count; ++k) {
      a[k] = reinterpret_cast<const BlockQ8_0*>(xq + (t + k) * act_bytes);
      off[k] = offsets + (t + k) * nb;
      out[k] = y + (t + k) * y_stride + r0;
    }
    group_token_tile(count, std::make_integer_sequence<int, kTokenTile>{}, g, nb, a, off, out);
  }
}

}  // namespace

bool row_groups_available(GgmlType t) {
  return (t == GgmlType::Q8_0 || t == GgmlType::MXFP4 || row_groups_k_format(t)) &&
         cpu_has_avx512();
}

void matmul_row_groups(const MatrixView& w, const uint8_t* xq, int64_t n_tokens, float* y,
                       int64_t y_stride, int64_t row_begin, int64_t row_end) {
  if (row_groups_k_format(w.type)) {
    return matmul_row_groups_k(w, xq, n_tokens, y, y_stride, row_begin, row_end);
  }
  const int64_t nb = w.cols / kQK8_0;
  const size_t act_bytes = activation_row_bytes(w.type, w.cols);
  // Per-thread scratch: one packed group and the activations' offsets (a few hundred KiB).
  thread_local std::vector<GroupBlock> group;
  thread_local std::vector<int32_t> offsets;
  group.resize(static_cast<size_t>(nb));
  offsets.resize(static_cast<size_t>(n_tokens * nb));
  activation_offsets(xq, act_bytes, n_tokens, nb, offsets.data());
  for (int64_t r0 = row_begin; r0 + kRowGroupRows <= row_end; r0 += kRowGroupRows) {
    pack_group(w, r0, nb, group.data());
    group_all_tokens(group.data(), nb, xq, act_bytes, offsets.data(), n_tokens, y, y_stride, r0);
  }
}

}  // namespace v4::kernels
