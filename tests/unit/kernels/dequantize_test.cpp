// kernels/cpu/dequantize.cpp against an independent decoder: the per-element formulas of spec §6,
// evaluated value by value from the block bytes (no shared code with the kernels beyond the
// lookup tables, which quant_tables_test checks). Results must be bit-identical; the formulas'
// float operations are written in the spec's (and ggml's) order. Bit-exactness with gguf-py
// itself is tests/python/test_quant_tables.py.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_tables.h"
#include "quant_test_inputs.h"

namespace v4::kernels {
namespace {

using test::kBlockTypes;

uint16_t u16_at(const uint8_t* p, size_t offset) {
  uint16_t v;
  std::memcpy(&v, p + offset, 2);
  return v;
}

uint32_t u32_at(const uint8_t* p, size_t offset) {
  uint32_t v;
  std::memcpy(&v, p + offset, 4);
  return v;
}

float half_at(const uint8_t* p, size_t offset) { return fp16_to_fp32(u16_at(p, offset)); }

int grid_element(const uint64_t* grid, int row, int i, bool is_signed) {
  const auto byte = static_cast<uint8_t>(grid[row] >> (8 * i));
  return is_signed ? static_cast<int8_t>(byte) : byte;
}

// Spec §6 Q4_K scale/min formula, written out again.
void k4_scale_min(const uint8_t* scales, int s, int* sc, int* m) {
  if (s < 4) {
    *sc = scales[s] & 63;
    *m = scales[s + 4] & 63;
  } else {
    *sc = (scales[s + 4] & 0xF) | ((scales[s - 4] >> 6) << 4);
    *m = (scales[s + 4] >> 4) | ((scales[s] >> 6) << 4);
  }
}

// Value j of one block, straight from spec §6. Offsets are the ggml-common.h layouts.
float spec_value(GgmlType type, const uint8_t* b, int j) {
  switch (type) {
    case GgmlType::Q8_0:
      return static_cast<int8_t>(b[2 + j]) * half_at(b, 0);
    case GgmlType::Q2_K: {  // scales[16] @0, qs[64] @16, d @80, dmin @82
      const int h = j / 128, r = j % 128, k = r / 32, l = r % 32, s = j / 16;
      const int q = (b[16 + 32 * h + l] >> (2 * k)) & 3;
      return half_at(b, 80) * (b[s] & 0xF) * q - half_at(b, 82) * (b[s] >> 4);
    }
    case GgmlType::Q4_K:    // d @0, dmin @2, scales[12] @4, qs[128] @16
    case GgmlType::Q5_K: {  // d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48
      const bool five = type == GgmlType::Q5_K;
      const uint8_t* qs = b + (five ? 48 : 16);
      const int c = j / 64, i = j % 64, s = j / 32;
      int code = i < 32 ? qs[32 * c + i] & 0xF : qs[32 * c + i - 32] >> 4;
      if (five) code |= ((b[16 + j % 32] >> s) & 1) << 4;
      int sc, m;
      k4_scale_min(b + 4, s, &sc, &m);
      return half_at(b, 0) * sc * code - half_at(b, 2) * m;
    }
    case GgmlType::Q6_K: {  // ql[128] @0, qh[64] @128, scales[16] @192, d @208
      const int h = j / 128, r = j % 128, k = r / 32, l = r % 32;
      const uint8_t* ql = b + 64 * h;
      const int low = k == 0   ? ql[l] & 0xF
                      : k == 1 ? ql[32 + l] & 0xF
                      : k == 2 ? ql[l] >> 4
                               : ql[32 + l] >> 4;
      const int high = (b[128 + 32 * h + l] >> (2 * k)) & 3;
      return half_at(b, 208) * static_cast<int8_t>(b[192 + j / 16]) * ((low | high << 4) - 32);
    }
    case GgmlType::IQ2_XXS: {  // d @0, qs @2
      const int g = j / 32, k = (j % 32) / 8, i = j % 8;
      const uint32_t A = u32_at(b, 2 + 8 * g), B = u32_at(b, 2 + 8 * g + 4);
      const float db = half_at(b, 0) * (0.5f + (B >> 28)) * 0.25f;
      const int row = (A >> (8 * k)) & 0xFF;
      const bool minus = (ksigns_iq2xs[(B >> (7 * k)) & 127] >> i) & 1;
      return db * grid_element(iq2xxs_grid, row, i, false) * (minus ? -1.f : 1.f);
    }
    case GgmlType::IQ2_XS: {  // d @0, qs[32] u16 @2, scales[8] @66
      const int g = j / 32, i = j % 8;
      const uint16_t code = u16_at(b, 2 + 2 * (j / 8));
      const int nibble = j % 32 < 16 ? b[66 + g] & 0xF : b[66 + g] >> 4;
      const float db = half_at(b, 0) * (0.5f + nibble) * 0.25f;
      const bool minus = (ksigns_iq2xs[code >> 9] >> i) & 1;
      return db * grid_element(iq2xs_grid, code & 511, i, false) * (minus ? -1.f : 1.f);
    }
    case GgmlType::IQ1_S: {  // d @0, qs[32] @2, qh[8] u16 @34
      const int g = j / 32, k = (j % 32) / 8, i = j % 8;
      const uint16_t qh = u16_at(b, 34 + 2 * g);
      const float dl = half_at(b, 0) * (2 * ((qh >> 12) & 7) + 1);
      const float delta = qh & 0x8000 ? -0.125f : 0.125f;
      const int row = b[2 + 4 * g + k] | (((qh >> (3 * k)) & 7) << 8);
      return dl * (grid_element(iq1s_grid, row, i, true) + delta);
    }
    case GgmlType::IQ1_M: {  // qs[32] @0, qh[16] @32, scales (4 u16) @48
      const int g = j / 32, k = (j % 32) / 8, i = j % 8;
      uint16_t S[4];
      for (int w = 0; w < 4; ++w) S[w] = u16_at(b, 48 + 2 * w);
      const auto d_bits = static_cast<uint16_t>((S[0] >> 12) | ((S[1] >> 8) & 0x00F0) |
                                                ((S[2] >> 4) & 0x0F00) | (S[3] & 0xF000));
      const int sub = (S[g / 2] >> (6 * (g % 2) + (j % 32 < 16 ? 0 : 3))) & 7;
      const float dl = fp16_to_fp32(d_bits) * (2 * sub + 1);
      const int nibble = (b[32 + 2 * g + k / 2] >> (4 * (k % 2))) & 0xF;
      const int row = b[4 * g + k] | ((nibble & 7) << 8);
      return dl * (grid_element(iq1s_grid, row, i, true) + (nibble & 8 ? -0.125f : 0.125f));
    }
    case GgmlType::MXFP4: {  // e @0, qs[16] @1; split nibble order
      const float scale = std::ldexp(1.0f, b[0] - 128);
      const int nibble = j < 16 ? b[1 + j] & 0xF : b[1 + j - 16] >> 4;
      return kvalues_mxfp4[nibble] * scale;
    }
    default:
      ADD_FAILURE() << "no spec formula for " << ggml_type_name(type);
      return 0;
  }
}

class DequantizeSpec : public ::testing::TestWithParam<GgmlType> {};

TEST_P(DequantizeSpec, RandomBlocksEqualSpecFormulasBitForBit) {
  const GgmlType type = GetParam();
  const auto traits = ggml_type_traits(type);
  const size_t n_blocks = 64;
  const std::vector<uint8_t> blocks =
      test::random_blocks(type, n_blocks, 7 + static_cast<uint32_t>(type));
  const int64_t n = static_cast<int64_t>(n_blocks * traits.block_size);
  std::vector<float> ours(static_cast<size_t>(n));
  dequantize_row(type, blocks.data(), ours.data(), n);
  size_t mismatches = 0;
  for (size_t blk = 0; blk < n_blocks; ++blk) {
    for (uint32_t j = 0; j < traits.block_size; ++j) {
      const float want =
          spec_value(type, blocks.data() + blk * traits.type_size, static_cast<int>(j));
      const float got = ours[blk * traits.block_size + j];
      if (std::bit_cast<uint32_t>(want) != std::bit_cast<uint32_t>(got) && mismatches++ < 5) {
        ADD_FAILURE() << "block " << blk << " value " << j << ": kernel " << got << ", spec "
                      << want;
      }
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

INSTANTIATE_TEST_SUITE_P(AllBlockFormats, DequantizeSpec, ::testing::ValuesIn(kBlockTypes),
                         [](const auto& info) { return test::type_label(info.param); });

TEST(Dequantize, MxFp4ExtremeExponentsGiveSubnormalAndOverflowAsGgml) {
  BlockMXFP4 block{};
  block.qs[0] = 0x71;  // value 0 = kvalues[1] = 1, value 16 = kvalues[7] = 12
  float y[32];
  block.e = 0;
  dequantize_row(GgmlType::MXFP4, &block, y, 32);
  EXPECT_EQ(y[0], std::ldexp(1.0f, -128));  // subnormal, exact
  block.e = 255;
  dequantize_row(GgmlType::MXFP4, &block, y, 32);
  EXPECT_EQ(y[0], std::ldexp(1.0f, 127));
  EXPECT_TRUE(std::isinf(y[16]));  // 12·2^127 exceeds float: inf, as in ggml and gguf-py
}

TEST(Dequantize, FloatTypesWidenExactly) {
  const float values[] = {0.0f, -0.0f, 1.5f, -65504.0f, 6.1035156e-05f, 5.9604645e-08f};
  uint16_t halves[6], bfloats[6];
  for (int i = 0; i < 6; ++i) {
    halves[i] = fp32_to_fp16(values[i]);
    bfloats[i] = static_cast<uint16_t>(std::bit_cast<uint32_t>(values[i]) >> 16);
  }
  float out[6];
  dequantize_row(GgmlType::F16, halves, out, 6);
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(std::bit_cast<uint32_t>(out[i]), std::bit_cast<uint32_t>(values[i]));
  dequantize_row(GgmlType::BF16, bfloats, out, 6);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(out[i]), std::bit_cast<uint32_t>(values[i]) & 0xFFFF0000u);
  }
  dequantize_row(GgmlType::F32, values, out, 6);
  EXPECT_EQ(std::memcmp(out, values, sizeof(values)), 0);
}

TEST(Dequantize, SupportsExactlyTheSpecFormats) {
  for (GgmlType type : test::kAllTypes) EXPECT_TRUE(can_dequantize(type)) << ggml_type_name(type);
  EXPECT_FALSE(can_dequantize(GgmlType::Q4_0));
  EXPECT_FALSE(can_dequantize(GgmlType::Q3_K));
  EXPECT_FALSE(can_dequantize(GgmlType::IQ4_XS));
}

}  // namespace
}  // namespace v4::kernels
