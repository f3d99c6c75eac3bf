// kernels/cpu/quant_blocks.h: block sizes agree with core's ggml type table, and the shared field
// decoders agree with the spec §6 formulas.
#include "kernels/cpu/quant_blocks.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/ggml_type.h"
#include "core/half.h"

namespace v4::kernels {
namespace {

TEST(QuantBlocks, StructSizesEqualCoreTypeTable) {
  EXPECT_EQ(sizeof(BlockQ8_0), ggml_type_traits(GgmlType::Q8_0).type_size);
  EXPECT_EQ(sizeof(BlockQ2K), ggml_type_traits(GgmlType::Q2_K).type_size);
  EXPECT_EQ(sizeof(BlockQ4K), ggml_type_traits(GgmlType::Q4_K).type_size);
  EXPECT_EQ(sizeof(BlockQ5K), ggml_type_traits(GgmlType::Q5_K).type_size);
  EXPECT_EQ(sizeof(BlockQ6K), ggml_type_traits(GgmlType::Q6_K).type_size);
  EXPECT_EQ(sizeof(BlockQ8K), ggml_type_traits(GgmlType::Q8_K).type_size);
  EXPECT_EQ(sizeof(BlockIQ2XXS), ggml_type_traits(GgmlType::IQ2_XXS).type_size);
  EXPECT_EQ(sizeof(BlockIQ2XS), ggml_type_traits(GgmlType::IQ2_XS).type_size);
  EXPECT_EQ(sizeof(BlockIQ1S), ggml_type_traits(GgmlType::IQ1_S).type_size);
  EXPECT_EQ(sizeof(BlockIQ1M), ggml_type_traits(GgmlType::IQ1_M).type_size);
  EXPECT_EQ(sizeof(BlockMXFP4), ggml_type_traits(GgmlType::MXFP4).type_size);
  EXPECT_EQ(ggml_type_traits(GgmlType::Q8_K).block_size, static_cast<uint32_t>(kQK_K));
}

TEST(QuantBlocks, FieldOffsetsFollowSpecLayout) {
  // Spec §6 table: Q2_K puts d, dmin after scales[16] and qs[64]; Q6_K puts d last.
  EXPECT_EQ(offsetof(BlockQ2K, d), 80u);
  EXPECT_EQ(offsetof(BlockQ2K, dmin), 82u);
  EXPECT_EQ(offsetof(BlockQ6K, d), 208u);
  EXPECT_EQ(offsetof(BlockQ5K, qs), 48u);
  EXPECT_EQ(offsetof(BlockIQ1S, qh), 34u);
  EXPECT_EQ(offsetof(BlockIQ1M, scales), 48u);
  EXPECT_EQ(offsetof(BlockQ8K, bsums), 260u);
}

TEST(QuantBlocks, E8M0HalfIsTwoToTheEMinus128ForEveryExponent) {
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(e8m0_to_fp32_half(static_cast<uint8_t>(e)), std::ldexp(1.0f, e - 128)) << "e=" << e;
  }
}

TEST(QuantBlocks, ScaleMinK4MatchesSpecFormula) {
  uint8_t scales[12];
  for (int trial = 0; trial < 64; ++trial) {
    for (int b = 0; b < 12; ++b) scales[b] = static_cast<uint8_t>(trial * 37 + b * 101);
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, m;
      unpack_scale_min_k4(s, scales, &sc, &m);
      // Spec §6 Q4_K, written out per case.
      const int want_sc =
          s < 4 ? scales[s] & 63 : (scales[s + 4] & 0xF) | ((scales[s - 4] >> 6) << 4);
      const int want_m =
          s < 4 ? scales[s + 4] & 63 : (scales[s + 4] >> 4) | ((scales[s] >> 6) << 4);
      EXPECT_EQ(sc, want_sc);
      EXPECT_EQ(m, want_m);
    }
  }
}

TEST(QuantBlocks, Iq1mBlockScaleIsTheTopNibblesInWordOrder) {
  const uint16_t d16 = fp32_to_fp16(-0.0123f);
  uint16_t words[4];
  for (int w = 0; w < 4; ++w) {
    words[w] = static_cast<uint16_t>((((d16 >> (4 * w)) & 0xF) << 12) | (0x0ABC + w));
  }
  EXPECT_EQ(iq1m_block_scale_bits(words), d16);
}

}  // namespace
}  // namespace v4::kernels
