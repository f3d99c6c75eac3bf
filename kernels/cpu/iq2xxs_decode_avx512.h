// IQ2_XXS block decoding in 512-bit lanes, shared by the AVX-512 row kernel
// (kernels/cpu/vec_dot_avx512.cpp) and the row-group kernel (kernels/cpu/row_group_matmul_k.cpp).
// A block is 8 groups of 32; group g is qs[4g..4g+3] read as two u32: four grid indices (bytes),
// then four 7-bit sign indices and a 4-bit scale. The 32 sign indices are cut out of the eight
// u32 by one multishift, mapped through the 128-entry ksigns table by one two-table permute (the
// table's bit 7 is the parity sign), and packed into four 64-bit masks, one per pair of groups.
// The grid rows are loaded as scalars (measured faster than a gather). Internal to kernels/cpu.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_tables.h"

#define V4_AVX512_IQ2_DECODE \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi")))

namespace v4::kernels::avx512 {

// The permute tables of the sign decoding; built once per kernel call.
struct Iq2XxsSignTables {
  __m512i lo, hi, shifts, compact;
};

V4_AVX512_IQ2_DECODE inline Iq2XxsSignTables iq2xxs_sign_tables() {
  Iq2XxsSignTables t;
  t.lo = _mm512_loadu_si512(ksigns_iq2xs);
  t.hi = _mm512_loadu_si512(ksigns_iq2xs + 64);
  // Per u64 (group): result bytes 0..3 = bits 32, 39, 46, 53 onward — the sign indices.
  t.shifts = _mm512_set1_epi64(0x352E2720);
  alignas(64) uint8_t compact_bytes[64];
  for (int k = 0; k < 64; ++k) compact_bytes[k] = static_cast<uint8_t>((k / 4) * 8 + k % 4) & 63;
  t.compact = _mm512_load_si512(compact_bytes);
  return t;
}

// grid[p]: the unsigned grid bytes of groups 2p (bytes 0..31) and 2p + 1 (bytes 32..63), in
// position order; masks[p]: bit j set where value j of that pair is negative.
V4_AVX512_IQ2_DECODE inline void iq2xxs_grid_and_signs(const Iq2XxsSignTables& t,
                                                       const BlockIQ2XXS& x, __m512i grid[4],
                                                       uint64_t masks[4]) {
  const __m512i q = _mm512_loadu_si512(x.qs);
  const __m512i sign_index = _mm512_multishift_epi64_epi8(t.shifts, q);
  const __m512i sign_bytes = _mm512_permutex2var_epi8(t.lo, sign_index, t.hi);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(masks),
                      _mm512_castsi512_si256(_mm512_permutexvar_epi8(t.compact, sign_bytes)));
  const auto* idx = reinterpret_cast<const uint8_t*>(x.qs);
  for (int p = 0; p < 4; ++p) {
    const uint8_t* g0 = idx + 16 * p;
    const uint8_t* g1 = g0 + 8;
    grid[p] = _mm512_set_epi64(
        static_cast<int64_t>(iq2xxs_grid[g1[3]]), static_cast<int64_t>(iq2xxs_grid[g1[2]]),
        static_cast<int64_t>(iq2xxs_grid[g1[1]]), static_cast<int64_t>(iq2xxs_grid[g1[0]]),
        static_cast<int64_t>(iq2xxs_grid[g0[3]]), static_cast<int64_t>(iq2xxs_grid[g0[2]]),
        static_cast<int64_t>(iq2xxs_grid[g0[1]]), static_cast<int64_t>(iq2xxs_grid[g0[0]]));
  }
}

}  // namespace v4::kernels::avx512
