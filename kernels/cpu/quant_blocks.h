// Byte layouts of the quant blocks of spec §6 as plain structs, field for field ggml's
// ggml-common.h (fp16 fields are raw IEEE-half bits), plus the small field decoders that several
// kernels share. Sizes are checked against ggml's static asserts and core's type table.
#pragma once

#include <bit>
#include <cstdint>

#include "core/hd.h"

namespace v4::kernels {

inline constexpr int kQK_K = 256;     // values per K/IQ super-block
inline constexpr int kQK8_0 = 32;     // values per Q8_0 block
inline constexpr int kQK_MXFP4 = 32;  // values per MXFP4 block

// y = d·qs[j]
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK8_0];
};

// 16 sub-blocks of 16: y = d·(scales[s] & 0xF)·q − dmin·(scales[s] >> 4), q 2-bit.
struct BlockQ2K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d;
  uint16_t dmin;
};

// 8 sub-blocks of 32 with 6-bit scale and min packed in scales[12] (unpack_scale_min_k4).
struct BlockQ4K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};

// Q4_K plus one high bit per value in qh.
struct BlockQ5K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};

// 16 sub-blocks of 16 with signed 8-bit scales; 6-bit codes split into ql (4) and qh (2).
struct BlockQ6K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};

// Activation side only (never in files): the input format of the K/IQ dot products.
struct BlockQ8K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];  // sum of qs over each group of 16
};

// 8 groups of 32; group g = qs[4g..4g+3] read as two u32 (grid bytes; sign indices + scale).
struct BlockIQ2XXS {
  uint16_t d;
  uint16_t qs[kQK_K / 8];
};

// One u16 per 8 values: 9-bit grid index, 7-bit sign index; a 4-bit scale per 16 values.
struct BlockIQ2XS {
  uint16_t d;
  uint16_t qs[kQK_K / 8];
  uint8_t scales[kQK_K / 32];
};

// 8 groups of 32: qs = low index bytes; qh[g] = 4×3 high index bits, 3-bit scale, delta sign.
struct BlockIQ1S {
  uint16_t d;
  uint8_t qs[kQK_K / 8];
  uint16_t qh[kQK_K / 32];
};

// qs = low index bytes; qh nibbles = 3 high index bits + delta sign; scales = 4 u16 holding
// 3-bit sub-scales and, in their top nibbles, the fp16 block scale (iq1m_block_scale_bits).
struct BlockIQ1M {
  uint8_t qs[kQK_K / 8];
  uint8_t qh[kQK_K / 16];
  uint8_t scales[kQK_K / 32];
};

// E8M0 exponent e and 32 E2M1 codes: value j in the low nibble of qs[j], j+16 in the high one.
struct BlockMXFP4 {
  uint8_t e;
  uint8_t qs[kQK_MXFP4 / 2];
};

// Sizes from ggml-common.h's static asserts (spec §6 table).
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ2K) == 84);
static_assert(sizeof(BlockQ4K) == 144);
static_assert(sizeof(BlockQ5K) == 176);
static_assert(sizeof(BlockQ6K) == 210);
static_assert(sizeof(BlockQ8K) == 292);
static_assert(sizeof(BlockIQ2XXS) == 66);
static_assert(sizeof(BlockIQ2XS) == 74);
static_assert(sizeof(BlockIQ1S) == 50);
static_assert(sizeof(BlockIQ1M) == 56);
static_assert(sizeof(BlockMXFP4) == 17);

// Q4_K/Q5_K 6-bit scale and min of sub-block j (spec §6 Q4_K; ggml get_scale_min_k4).
V4_HD inline void unpack_scale_min_k4(int j, const uint8_t* scales, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = scales[j] & 63;
    *min = scales[j + 4] & 63;
  } else {
    *scale = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    *min = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// MXFP4 scale 2^(e−128): half the E8M0 value because kvalues_mxfp4 holds doubled E2M1 values.
// e = 0 and 1 give the subnormals 2^-128 and 2^-127 (ggml_e8m0_to_fp32_half).
V4_HD inline float e8m0_to_fp32_half(uint8_t e) {
  const uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<uint32_t>(e - 1) << 23;
  return std::bit_cast<float>(bits);
}

// IQ1_M keeps its fp16 block scale in the top nibbles of the four u16 scale words (spec §6).
V4_HD inline uint16_t iq1m_block_scale_bits(const uint16_t words[4]) {
  return static_cast<uint16_t>((words[0] >> 12) | ((words[1] >> 8) & 0x00F0) |
                               ((words[2] >> 4) & 0x0F00) | (words[3] & 0xF000));
}

}  // namespace v4::kernels
