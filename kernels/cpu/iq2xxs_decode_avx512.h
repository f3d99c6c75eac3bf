// IQ2_XXS block decoding in 512-bit lanes, shared by the AVX-512 row kernel
// (kernels/cpu/vec_dot_avx512.cpp) and the row-group kernel (kernels/cpu/row_group_matmul_k.cpp).
// A block is 8 groups of 32; group g is qs[4g..4g+3] read as two u32: four grid indices (bytes),
// then four 7-bit sign indices and a 4-bit scale. The 32 sign indices are cut out of the eight
// u32 by one multishift, mapped through the 128-entry ksigns table by one two-table permute (the
// table's bit 7 is the parity sign), and packed into four 64-bit masks, one per pair of groups.
// The grid rows come from a 256-entry table of 2-bit codes (each magnitude 8, 25 or 43 is a code
// 0..2) held in eight registers: four two-table word permutes and three blends look up all 32
// rows at once, and per pair of groups a multishift cuts the codes out and a byte shuffle turns
// them into magnitudes — fewer instructions than 32 scalar loads and inserts. Internal to
// kernels/cpu.
#pragma once

#include <immintrin.h>

#include <array>
#include <cstdint>

#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_tables.h"

#define V4_AVX512_IQ2_DECODE \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi")))

namespace v4::kernels::avx512 {

// iq2xxs_grid as 2-bit codes: element j's magnitude 8, 25 or 43 is code 0, 1 or 2 at bits 2j.
inline const uint16_t* iq2xxs_grid_codes() {
  static const std::array<uint16_t, 256> table = [] {
    std::array<uint16_t, 256> t{};
    for (int i = 0; i < 256; ++i) {
      for (int j = 0; j < 8; ++j) {
        const uint64_t m = (iq2xxs_grid[i] >> (8 * j)) & 0xFF;
        t[i] = static_cast<uint16_t>(t[i] | (m == 8 ? 0 : m == 25 ? 1 : 2) << (2 * j));
      }
    }
    return t;
  }();
  return table.data();
}

// The tables and permute controls of the decoding; built once per kernel call.
struct Iq2XxsTables {
  __m512i lo, hi, shifts, compact;
  __m512i grid[8];     // the code table, 32 entries per register
  __m512i grid_index;  // byte permute: word w = the grid index of octet w
  __m512i expand[4];   // word permute: u64 lane k = octet 8p + k's codes (pair p)
  __m512i code_shifts, magnitudes;
};

// The constant permute controls, as arrays (loaded, not computed, per kernel call).
struct Iq2XxsControls {
  alignas(64) uint8_t compact[64];
  alignas(64) uint8_t grid_index[64];
  alignas(64) uint16_t expand[4][32];
  alignas(64) uint8_t magnitudes[64];
};

constexpr Iq2XxsControls make_iq2xxs_controls() {
  Iq2XxsControls c{};
  for (int k = 0; k < 64; ++k) c.compact[k] = static_cast<uint8_t>(((k / 4) * 8 + k % 4) & 63);
  // Octet w's grid index is byte 8·(w / 4) + w % 4 of the block (its group's first u32).
  for (int w = 0; w < 32; ++w) c.grid_index[2 * w] = static_cast<uint8_t>(8 * (w / 4) + w % 4);
  for (int p = 0; p < 4; ++p) {
    for (int w = 0; w < 32; ++w) c.expand[p][w] = static_cast<uint16_t>(8 * p + w / 4);
  }
  for (int k = 0; k < 4; ++k) {
    c.magnitudes[16 * k] = 8, c.magnitudes[16 * k + 1] = 25, c.magnitudes[16 * k + 2] = 43;
  }
  return c;
}

inline constexpr Iq2XxsControls kIq2XxsControls = make_iq2xxs_controls();

V4_AVX512_IQ2_DECODE inline Iq2XxsTables iq2xxs_tables() {
  const Iq2XxsControls& c = kIq2XxsControls;
  Iq2XxsTables t;
  t.lo = _mm512_loadu_si512(ksigns_iq2xs);
  t.hi = _mm512_loadu_si512(ksigns_iq2xs + 64);
  // Per u64 (group): result bytes 0..3 = bits 32, 39, 46, 53 onward — the sign indices.
  t.shifts = _mm512_set1_epi64(0x352E2720);
  t.compact = _mm512_load_si512(c.compact);
  const uint16_t* codes = iq2xxs_grid_codes();
  for (int r = 0; r < 8; ++r) t.grid[r] = _mm512_loadu_si512(codes + 32 * r);
  t.grid_index = _mm512_load_si512(c.grid_index);
  for (int p = 0; p < 4; ++p) t.expand[p] = _mm512_load_si512(c.expand[p]);
  t.code_shifts = _mm512_set1_epi64(0x0E0C0A0806040200);  // byte j: bits 2j onward
  t.magnitudes = _mm512_load_si512(c.magnitudes);
  return t;
}

// grid[p]: the unsigned grid bytes of groups 2p (bytes 0..31) and 2p + 1 (bytes 32..63), in
// position order; masks[p]: bit j set where value j of that pair is negative.
V4_AVX512_IQ2_DECODE inline void iq2xxs_grid_and_signs(const Iq2XxsTables& t, const BlockIQ2XXS& x,
                                                       __m512i grid[4], uint64_t masks[4]) {
  const __m512i q = _mm512_loadu_si512(x.qs);
  const __m512i sign_index = _mm512_multishift_epi64_epi8(t.shifts, q);
  const __m512i sign_bytes = _mm512_permutex2var_epi8(t.lo, sign_index, t.hi);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(masks),
                      _mm512_castsi512_si256(_mm512_permutexvar_epi8(t.compact, sign_bytes)));
  // The 32 grid indices as words, their rows' codes, then per pair of groups the magnitudes.
  const __m512i index = _mm512_maskz_permutexvar_epi8(0x5555555555555555ULL, t.grid_index, q);
  const __m512i rows0 = _mm512_permutex2var_epi16(t.grid[0], index, t.grid[1]);
  const __m512i rows1 = _mm512_permutex2var_epi16(t.grid[2], index, t.grid[3]);
  const __m512i rows2 = _mm512_permutex2var_epi16(t.grid[4], index, t.grid[5]);
  const __m512i rows3 = _mm512_permutex2var_epi16(t.grid[6], index, t.grid[7]);
  const __mmask32 bit6 = _mm512_test_epi16_mask(index, _mm512_set1_epi16(64));
  const __mmask32 bit7 = _mm512_test_epi16_mask(index, _mm512_set1_epi16(128));
  const __m512i codes = _mm512_mask_blend_epi16(bit7, _mm512_mask_blend_epi16(bit6, rows0, rows1),
                                                _mm512_mask_blend_epi16(bit6, rows2, rows3));
  const __m512i three = _mm512_set1_epi8(3);
  for (int p = 0; p < 4; ++p) {
    const __m512i octets = _mm512_permutexvar_epi16(t.expand[p], codes);
    const __m512i code =
        _mm512_and_si512(_mm512_multishift_epi64_epi8(t.code_shifts, octets), three);
    grid[p] = _mm512_shuffle_epi8(t.magnitudes, code);
  }
}

}  // namespace v4::kernels::avx512
