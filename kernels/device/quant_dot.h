// The device's quantized dot products, one unit of a row at a time (spec §6: an MXFP4 or Q8_0
// block, or a group of 32 values of the 256-value formats), V4_HD so that the host runs and
// tests the very code a GPU runs. A lane of a warp takes every 32nd unit of a row and sums the
// units' results in float; the integer sums inside a unit are exact and identical to
// kernels/cpu/vec_dot.cpp (ggml's generic forms), only the float accumulation is ordered
// differently from the CPU's. Activations are quantized exactly like
// the CPU's (quantize_row_q8_0 / quantize_row_q8_k), block by block.
#pragma once

#include <math.h>
#include <string.h>

#include <cstdint>

#include "core/ggml_type.h"
#include "core/half.h"
#include "core/hd.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_rounding.h"
#include "kernels/device/mxfp4_block.h"

namespace v4::kernels {

// The lookup tables of the IQ formats, where the executing code can read them: the host arrays
// of quant_tables.h, or their copies in device memory. (The IQ2 sign table is computed instead,
// iq2_signs, and MXFP4's values are held in registers, mxfp4_block.h.)
struct QuantTables {
  const uint64_t* iq2xxs_grid = nullptr;
  const uint64_t* iq2xs_grid = nullptr;
  const uint64_t* iq1s_grid = nullptr;
};

// --- activation blocks (bit-identical to activation_quant.cpp) ---

// The values are read into registers before anything is stored: a GPU thread then has every
// load in flight at once instead of one load-store round trip per value.
V4_HD inline void quantize_block_q8_0(const float* src, BlockQ8_0* y) {
  float v[kQK8_0];
  V4_UNROLL_ALL
  for (int j = 0; j < kQK8_0; ++j) v[j] = src[j];
  float amax = 0.0f;
  V4_UNROLL_ALL
  for (int j = 0; j < kQK8_0; ++j) {
    const float ax = fabsf(v[j]);
    amax = amax > ax ? amax : ax;
  }
  const float d = amax / ((1 << 7) - 1);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = fp32_to_fp16(d);
  V4_UNROLL_ALL
  for (int j = 0; j < kQK8_0; ++j) y->qs[j] = static_cast<int8_t>(roundf(v[j] * id));
}

// Group g (values 32g..32g+31) of a Q8_K block, for a thread per group: each finds the block's
// scale from all 256 values (loads only, so they overlap; every group gets the same scale),
// then writes its 32 quants and 2 sums, and group 0 the scale: the block is
// quantize_block_q8_k's, bit for bit.
V4_HD inline void quantize_group_q8_k(const float* src, BlockQ8K* y, int g) {
  float max = 0, amax = 0;
  for (int j = 0; j < kQK_K; ++j) {
    const float ax = fabsf(src[j]);
    if (ax > amax) {
      amax = ax;
      max = src[j];
    }
  }
  float v[32];
  V4_UNROLL_ALL
  for (int l = 0; l < 32; ++l) v[l] = src[32 * g + l];
  const float iscale = amax == 0.0f ? 0.0f : -127.f / max;
  int sums[2] = {0, 0};
  V4_UNROLL_ALL
  for (int l = 0; l < 32; ++l) {
    const int q = amax == 0.0f ? 0 : nearest_int(iscale * v[l]);
    const int8_t c = static_cast<int8_t>(q < 127 ? q : 127);
    y->qs[32 * g + l] = c;
    sums[l / 16] += c;
  }
  y->bsums[2 * g] = static_cast<int16_t>(sums[0]);
  y->bsums[2 * g + 1] = static_cast<int16_t>(sums[1]);
  if (g == 0) y->d = amax == 0.0f ? 0.0f : 1 / iscale;
}

// --- Q8_0 and MXFP4 blocks ---

// A Q8_0 weight block's 32 quants as 8 words (2-byte aligned in the GGUF layout: 16-bit loads).
V4_HD inline void load_q8_0_weights(const int8_t* qs, int32_t* w) {
#if defined(__CUDA_ARCH__)
  const uint16_t* h = reinterpret_cast<const uint16_t*>(qs);
#pragma unroll
  for (int j = 0; j < kQK8_0 / 4; ++j) {
    w[j] = static_cast<int32_t>(h[2 * j] | (static_cast<uint32_t>(h[2 * j + 1]) << 16));
  }
#else
  memcpy(w, qs, kQK8_0);
#endif
}

// --- Q8_0 rows in the split layout ---
// The device's activation rows for Q8_0 weights, and the Q8_0 weight rows the upload rewrites
// (model/backend/device/device_ops_q8_0_split.h): a row of `blocks` blocks holds every block's
// 32 quants (the row 16-byte aligned), then their fp16 scales.

// Block u's 32 quants: two 16-byte loads on the device, so a warp's lanes read 1 KiB of
// contiguous bytes per block instead of 16 scattered 2-byte loads each.
V4_HD inline void load_q8_0_split_quants(const uint8_t* row, int64_t u, int32_t* q) {
#if defined(__CUDA_ARCH__)
  const uint4* p = reinterpret_cast<const uint4*>(row + u * kQK8_0);
  const uint4 lo = p[0], hi = p[1];
  memcpy(q, &lo, 16);
  memcpy(q + 4, &hi, 16);
#else
  memcpy(q, row + u * kQK8_0, kQK8_0);
#endif
}

// Block b written as block u of a split row of `blocks` blocks.
V4_HD inline void store_q8_0_split(const BlockQ8_0& b, uint8_t* row, int64_t blocks, int64_t u) {
  memcpy(row + u * kQK8_0, b.qs, kQK8_0);
  memcpy(row + blocks * kQK8_0 + 2 * u, &b.d, 2);
}

// The fp16 scale of block u of a Q8_0 row of `blocks` blocks, in either layout (2-byte aligned
// in both: one 16-bit load).
V4_HD inline uint16_t q8_0_scale(const uint8_t* row, int64_t blocks, int64_t u, bool split) {
  if (split) return reinterpret_cast<const uint16_t*>(row + blocks * kQK8_0)[u];
  return reinterpret_cast<const BlockQ8_0*>(row)[u].d;
}

// Σ w·a over a weight block loaded by load_q8_0_weights and 32 activation quants that are 16-byte
// aligned (the device's split activation rows): two 16-byte loads and eight __dp4a on the
// device. The integer sum is exact either way.
V4_HD inline int dot_q8_0_split(const int32_t* w, const uint8_t* a_qs) {
  int32_t a[kQK8_0 / 4];
  load_q8_0_split_quants(a_qs, 0, a);
  return dot32_i8(reinterpret_cast<const uint32_t*>(w), a);
}

// --- the float part of a unit's product ---
// Each unit's result is an exact integer sum of 32 products, then the float expression of its
// scales below. The lane loops here and the integer tensor-core product
// (model/backend/device/device_ops_matmul_mma.h) both finish a unit with these functions, so a
// unit adds the same float value whichever kernel summed its integers.

// MXFP4 block: e the weight block's E8M0 scale byte.
V4_HD inline float finish_mxfp4(uint8_t e, uint16_t y_d, int32_t sumi) {
  const float d = fp16_to_fp32(y_d) * e8m0_to_fp32_half(e);
  return d * sumi;
}

// Q2_K group g: isum is Σ scale·q·a over the group's two sub-blocks of 16 (the 4-bit scales
// folded into the integer sum); the mins meet the activation's sums of 16.
V4_HD inline float finish_q2_k(const BlockQ2K& x, int g, float y_d, const int16_t* bsums,
                               int32_t isum) {
  int summs = 0;
  for (int sub = 0; sub < 2; ++sub) summs += bsums[sub] * (x.scales[2 * g + sub] >> 4);
  return y_d * fp16_to_fp32(x.d) * isum - y_d * fp16_to_fp32(x.dmin) * summs;
}

// Q4_K and Q5_K group g: s is Σ code·a.
template <class Block>
V4_HD inline float finish_k4(const Block& x, int g, float y_d, const int16_t* bsums, int32_t s) {
  uint8_t scale, min;
  unpack_scale_min_k4(g, x.scales, &scale, &min);
  const int sumi_min = (bsums[0] + bsums[1]) * min;
  return fp16_to_fp32(x.d) * y_d * (s * scale) - fp16_to_fp32(x.dmin) * y_d * sumi_min;
}

// IQ2_XXS group g: sumi is Σ (±grid value)·a.
V4_HD inline float finish_iq2_xxs(const BlockIQ2XXS& x, int g, float y_d, int32_t sumi) {
  uint32_t aux1;
  memcpy(&aux1, x.qs + 4 * g + 2, sizeof(aux1));
  const uint32_t ls = 2 * (aux1 >> 28) + 1;
  return 0.125f * (fp16_to_fp32(x.d) * y_d * (sumi * static_cast<int32_t>(ls)));
}

// Q6_K group g: s0 and s1 are Σ q·a over its halves of 16, each under a signed 8-bit scale.
V4_HD inline float finish_q6_k(const BlockQ6K& x, int g, float y_d, int32_t s0, int32_t s1) {
  return fp16_to_fp32(x.d) * y_d * (x.scales[2 * g] * s0 + x.scales[2 * g + 1] * s1);
}

// IQ2_XS group g: s0 and s1 are Σ (±grid value)·a over its halves of 16, each under a 4-bit
// scale ls = 2·code + 1.
V4_HD inline float finish_iq2_xs(const BlockIQ2XS& x, int g, float y_d, int32_t s0, int32_t s1) {
  const int ls0 = 2 * (x.scales[g] & 0xF) + 1, ls1 = 2 * (x.scales[g] >> 4) + 1;
  return 0.125f * (fp16_to_fp32(x.d) * y_d * (s0 * ls0 + s1 * ls1));
}

// IQ1_S group g: lsum is Σ grid value·a; the delta meets the activation's sums of 16.
V4_HD inline float finish_iq1_s(const BlockIQ1S& x, int g, float y_d, const int16_t* bsums,
                                int32_t lsum) {
  const uint16_t qh = x.qh[g];
  const int ls = 2 * ((qh >> 12) & 7) + 1;
  const int delta = qh & 0x8000 ? -1 : 1;
  const int sumi1 = ls * delta * (bsums[0] + bsums[1]);
  return fp16_to_fp32(x.d) * y_d * (ls * lsum + 0.125f * sumi1);
}

// IQ1_M group g: s0 and s1 are 8·Σ grid value·a + Σ (±1)·a (the deltas) over its halves of 16,
// each under its own 3-bit scale ls. ggml sums the grid and delta parts apart and adds
// grid + delta/8 in float; both parts are below 2^17 in magnitude, so that float sum is exact and
// equals the eighths below divided by 8, which is exact too.
V4_HD inline float finish_iq1_m(const BlockIQ1M& x, int g, float y_d, int32_t s0, int32_t s1) {
  uint16_t sc[4];
  memcpy(sc, x.scales, sizeof(sc));
  const int ls0 = 2 * ((sc[g / 2] >> (6 * (g % 2) + 0)) & 0x7) + 1;
  const int ls1 = 2 * ((sc[g / 2] >> (6 * (g % 2) + 3)) & 0x7) + 1;
  const int32_t eighths = s0 * ls0 + s1 * ls1;
  return fp16_to_fp32(iq1m_block_scale_bits(sc)) * y_d * (eighths * 0.125f);
}

// Q8_0 block: s is Σ code·a, dw the weight block's scale, da the activation block's fp16 scale.
V4_HD inline float finish_q8_0(float dw, uint16_t da, int32_t s) {
  return s * (dw * fp16_to_fp32(da));
}

// --- helpers of the group dot products ---

// Q4_K and Q5_K: 8 sub-blocks of 32, 6-bit scales and mins; code j of sub-block `sub`.
V4_HD inline int k4_code(const BlockQ4K& x, int sub, int l) {
  const uint8_t q = x.qs[32 * (sub / 2) + l];
  return sub % 2 ? q >> 4 : q & 0xF;
}
V4_HD inline int k4_code(const BlockQ5K& x, int sub, int l) {
  const uint8_t q = x.qs[32 * (sub / 2) + l];
  const int high = (x.qh[l] >> sub) & 1;
  return (sub % 2 ? q >> 4 : q & 0xF) + 16 * high;
}

// Q6_K: code l of group g, signed (−32…31): 4 low bits in ql, 2 high bits in qh.
V4_HD inline int q6_k_code(const BlockQ6K& x, int g, int l) {
  const int chunk = (g / 4) * 128, quarter = g % 4;
  const uint8_t ql = x.ql[chunk / 2 + (quarter % 2) * 32 + l];
  const uint8_t qh = x.qh[chunk / 4 + l];
  const int low = quarter < 2 ? ql & 0xF : ql >> 4;
  return (low | (((qh >> (2 * quarter)) & 3) << 4)) - 32;
}

// Value j of an IQ2 octet: an unsigned grid byte under its sign bit.
V4_HD inline int iq2_octet_value(uint64_t grid, uint8_t signs, int j) {
  const int v = static_cast<int>((grid >> (8 * j)) & 0xFF);
  return signs & (1u << j) ? -v : v;
}

// Value j of an IQ1 octet: a signed grid byte.
V4_HD inline int iq1_octet_value(uint64_t grid, int j) {
  return static_cast<int8_t>((grid >> (8 * j)) & 0xFF);
}

// Octet k (of 4) of group g in the IQ formats: the grid row and, for IQ2, its sign bits; for IQ1_M
// the delta's sign. The lane loops below and the unit decoders (quant_units_i8.h) both read the
// octets through these.
struct Iq2Octet {
  uint64_t grid;
  uint8_t signs;
};
// The sign byte of an IQ2 octet from its 7 stored sign bits: the eighth makes the number of set
// bits even, which is ggml's ksigns_iq2xs table entry for entry (quant_tables_test). Computed
// rather than looked up: a warp's 32 lanes would read the table at 32 places, 4 loads per unit.
V4_HD inline uint8_t iq2_signs(uint32_t seven_bits) {
#if defined(__CUDA_ARCH__)
  const uint32_t parity = __popc(seven_bits) & 1u;
#else
  const uint32_t parity = static_cast<uint32_t>(__builtin_popcount(seven_bits)) & 1u;
#endif
  return static_cast<uint8_t>(seven_bits | (parity << 7));
}

// IQ2_XXS: aux is the group's two words (grid indices, then 7-bit sign indices).
V4_HD inline Iq2Octet iq2_xxs_octet(const uint32_t aux[2], int k, const QuantTables& t) {
  return {t.iq2xxs_grid[(aux[0] >> (8 * k)) & 0xFF], iq2_signs((aux[1] >> (7 * k)) & 127)};
}
V4_HD inline Iq2Octet iq2_xs_octet(const BlockIQ2XS& x, int g, int k, const QuantTables& t) {
  const uint16_t code = x.qs[4 * g + k];
  return {t.iq2xs_grid[code & 511], iq2_signs(code >> 9)};
}
V4_HD inline uint64_t iq1_s_octet(const BlockIQ1S& x, int g, int k, const QuantTables& t) {
  return t.iq1s_grid[x.qs[4 * g + k] | (((x.qh[g] >> (3 * k)) & 7) << 8)];
}
struct Iq1mOctet {
  uint64_t grid;
  int delta;  // ±1
};
V4_HD inline Iq1mOctet iq1_m_octet(const BlockIQ1M& x, int g, int k, const QuantTables& t) {
  const uint8_t nibble = (x.qh[2 * g + k / 2] >> (4 * (k % 2))) & 0xF;
  return {t.iq1s_grid[x.qs[4 * g + k] | ((nibble & 7) << 8)], nibble & 0x8 ? -1 : 1};
}

V4_HD inline int iq2_octet_dot(uint64_t grid, uint8_t signs, const int8_t* q8) {
  int sum = 0;
  for (int j = 0; j < 8; ++j) sum += iq2_octet_value(grid, signs, j) * q8[j];
  return sum;
}

V4_HD inline int iq1_octet_dot(uint64_t grid, const int8_t* q8) {
  int sum = 0;
  for (int j = 0; j < 8; ++j) sum += iq1_octet_value(grid, j) * q8[j];
  return sum;
}

// Value i of a float-type row (F32, F16, BF16).
V4_HD inline float float_weight(GgmlType type, const uint8_t* row, int64_t i) {
  if (type == GgmlType::F32) return reinterpret_cast<const float*>(row)[i];
  const uint16_t h = reinterpret_cast<const uint16_t*>(row)[i];
  return type == GgmlType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
}

// --- one group of 32 values of a 256-value block (K and IQ formats) ---
// A lane that takes a group rather than a whole block keeps all 32 lanes busy on rows of a few
// blocks (an expert's 4096 values are 16 blocks, 128 groups). Integer sums within a group are
// exact; the block's float scales are applied per group.

// 32 bytes from a 4-byte aligned address, with 4-byte loads on the device.
V4_HD inline void load_32_bytes(const uint8_t* src, uint8_t* out) {
#if defined(__CUDA_ARCH__)
  const uint32_t* w = reinterpret_cast<const uint32_t*>(src);
  uint32_t words[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) words[j] = w[j];
  memcpy(out, words, 32);
#else
  memcpy(out, src, 32);
#endif
}

// Group g of a Q8_K activation block: its 32 quants, its two sums of 16 and the block's scale.
struct Q8KGroup {
  float d;
  int8_t qs[32];
  int16_t bsums[2];
};

// Loaded with 4-byte loads on the device (a Q8_K block is 292 bytes: its quants are 4-byte
// aligned), eight per lane instead of 32 byte loads.
V4_HD inline Q8KGroup load_q8k_group(const BlockQ8K& y, int g) {
  Q8KGroup out;
  out.d = y.d;
#if defined(__CUDA_ARCH__)
  load_32_bytes(reinterpret_cast<const uint8_t*>(y.qs + 32 * g),
                reinterpret_cast<uint8_t*>(out.qs));
  const uint32_t sums = reinterpret_cast<const uint32_t*>(y.bsums)[g];
  memcpy(out.bsums, &sums, 4);
#else
  memcpy(out.qs, y.qs + 32 * g, 32);
  memcpy(out.bsums, y.bsums + 2 * g, 4);
#endif
  return out;
}

V4_HD inline float group_dot_q2_k(const BlockQ2K& x, const Q8KGroup& y, int g) {
  const int half = g / 4, shift = (g % 4) * 2;
  uint8_t q2[32];  // an 84-byte block's quants start 16 bytes in: 4-byte aligned
  load_32_bytes(x.qs + 32 * half, q2);
  const int8_t* q8 = y.qs;
  int isum = 0;
  for (int sub = 0; sub < 2; ++sub) {
    int isuml = 0;
    for (int l = 16 * sub; l < 16 * sub + 16; ++l) isuml += q8[l] * ((q2[l] >> shift) & 3);
    isum += (x.scales[2 * g + sub] & 0xF) * isuml;
  }
  return finish_q2_k(x, g, y.d, y.bsums, isum);
}

template <class Block>
V4_HD inline float group_dot_k4(const Block& x, const Q8KGroup& y, int g) {
  int s = 0;
  for (int l = 0; l < 32; ++l) s += y.qs[l] * k4_code(x, g, l);
  return finish_k4(x, g, y.d, y.bsums, s);
}

V4_HD inline float group_dot_q6_k(const BlockQ6K& x, const Q8KGroup& y, int g) {
  int32_t s[2] = {0, 0};
  for (int l = 0; l < 32; ++l) s[l / 16] += q6_k_code(x, g, l) * y.qs[l];
  return finish_q6_k(x, g, y.d, s[0], s[1]);
}

V4_HD inline float group_dot_iq2_xxs(const BlockIQ2XXS& x, const Q8KGroup& y, int g,
                                     const QuantTables& t) {
  uint32_t aux[2];
  memcpy(aux, x.qs + 4 * g, sizeof(aux));
  const int8_t* q8 = y.qs;
  int32_t sumi = 0;
  for (int k = 0; k < 4; ++k, q8 += 8) {
    const Iq2Octet o = iq2_xxs_octet(aux, k, t);
    sumi += iq2_octet_dot(o.grid, o.signs, q8);
  }
  return finish_iq2_xxs(x, g, y.d, sumi);
}

V4_HD inline float group_dot_iq2_xs(const BlockIQ2XS& x, const Q8KGroup& y, int g,
                                    const QuantTables& t) {
  const int8_t* q8 = y.qs;
  int32_t s[2] = {0, 0};
  for (int k = 0; k < 4; ++k, q8 += 8) {
    const Iq2Octet o = iq2_xs_octet(x, g, k, t);
    s[k / 2] += iq2_octet_dot(o.grid, o.signs, q8);
  }
  return finish_iq2_xs(x, g, y.d, s[0], s[1]);
}

V4_HD inline float group_dot_iq1_s(const BlockIQ1S& x, const Q8KGroup& y, int g,
                                   const QuantTables& t) {
  const int8_t* q8 = y.qs;
  int lsum = 0;
  for (int k = 0; k < 4; ++k, q8 += 8) lsum += iq1_octet_dot(iq1_s_octet(x, g, k, t), q8);
  return finish_iq1_s(x, g, y.d, y.bsums, lsum);
}

V4_HD inline float group_dot_iq1_m(const BlockIQ1M& x, const Q8KGroup& y, int g,
                                   const QuantTables& t) {
  const int8_t* q8 = y.qs;
  int32_t s[2] = {0, 0};
  for (int k = 0; k < 4; ++k, q8 += 8) {
    const Iq1mOctet o = iq1_m_octet(x, g, k, t);
    int octet_sum = 0;
    for (int j = 0; j < 8; ++j) octet_sum += q8[j];
    s[k / 2] += 8 * iq1_octet_dot(o.grid, q8) + octet_sum * o.delta;
  }
  return finish_iq1_m(x, g, y.d, s[0], s[1]);
}

// Dot-product units per block: 8 groups of 32 for the 256-value formats, else the block.
V4_HD inline int units_per_block(GgmlType type) {
  switch (type) {
    case GgmlType::Q2_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
    case GgmlType::IQ2_XXS:
    case GgmlType::IQ2_XS:
    case GgmlType::IQ1_S:
    case GgmlType::IQ1_M:
      return kQK_K / 32;
    default:
      return 1;
  }
}

// Unit u of a weight row against its quantized activation row: group u % 8 of block u / 8 for the
// 256-value formats. Q8_0, MXFP4 and float weights are not units here: the device matmul reads
// them itself (Q8_0 and MXFP4 against split activation rows).
V4_HD inline float unit_dot(GgmlType type, const uint8_t* w_row, const uint8_t* a_row, int64_t u,
                            const QuantTables& t) {
  const int64_t b = u / 8;
  const int g = static_cast<int>(u % 8);
  const Q8KGroup y = load_q8k_group(reinterpret_cast<const BlockQ8K*>(a_row)[b], g);
  switch (type) {
    case GgmlType::Q2_K:
      return group_dot_q2_k(reinterpret_cast<const BlockQ2K*>(w_row)[b], y, g);
    case GgmlType::Q4_K:
      return group_dot_k4(reinterpret_cast<const BlockQ4K*>(w_row)[b], y, g);
    case GgmlType::Q5_K:
      return group_dot_k4(reinterpret_cast<const BlockQ5K*>(w_row)[b], y, g);
    case GgmlType::Q6_K:
      return group_dot_q6_k(reinterpret_cast<const BlockQ6K*>(w_row)[b], y, g);
    case GgmlType::IQ2_XXS:
      return group_dot_iq2_xxs(reinterpret_cast<const BlockIQ2XXS*>(w_row)[b], y, g, t);
    case GgmlType::IQ2_XS:
      return group_dot_iq2_xs(reinterpret_cast<const BlockIQ2XS*>(w_row)[b], y, g, t);
    case GgmlType::IQ1_S:
      return group_dot_iq1_s(reinterpret_cast<const BlockIQ1S*>(w_row)[b], y, g, t);
    case GgmlType::IQ1_M:
      return group_dot_iq1_m(reinterpret_cast<const BlockIQ1M*>(w_row)[b], y, g, t);
    default:
      return 0.0f;
  }
}

// Dequantized value i of a row of `cols` values of an embedding-table type (F32, F16, BF16,
// Q8_0 in either layout).
V4_HD inline float dequantized_value(GgmlType type, const uint8_t* row, int64_t cols, int64_t i,
                                     bool q8_0_split) {
  if (type == GgmlType::Q8_0) {
    const int64_t u = i / kQK8_0;
    const int8_t q = q8_0_split ? static_cast<int8_t>(row[i])
                                : reinterpret_cast<const BlockQ8_0*>(row)[u].qs[i % kQK8_0];
    return fp16_to_fp32(q8_0_scale(row, cols / kQK8_0, u, q8_0_split)) * static_cast<float>(q);
  }
  return float_weight(type, row, i);
}

}  // namespace v4::kernels
