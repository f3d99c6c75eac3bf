// kernels/cpu/vec_dot.cpp: the reference dot product of a quantized weight row with an activation
// row in its activation format equals, within fp32 rounding, the double-precision dot product of
// the two rows dequantized (spec §6; dequantization itself is checked bit-exactly elsewhere).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "quant_test_inputs.h"

namespace v4::kernels {
namespace {

// Dequantized activation row: Q8_0 through dequantize_row, Q8_K as ggml's dequantize_row_q8_K
// (d·q in fp32), F32 as is.
std::vector<float> dequantize_activation(GgmlType type, const std::vector<uint8_t>& row, size_t n) {
  std::vector<float> out(n);
  if (type == GgmlType::Q8_K) {
    const auto* blocks = reinterpret_cast<const BlockQ8K*>(row.data());
    for (size_t i = 0; i < n; ++i) out[i] = blocks[i / kQK_K].d * blocks[i / kQK_K].qs[i % kQK_K];
  } else {
    dequantize_row(type, row.data(), out.data(), static_cast<int64_t>(n));
  }
  return out;
}

// The per-value offset −dmin·m of the formats with mins (Q2_K, Q4_K, Q5_K), found by decoding
// the row with every code zeroed; 0 for the others. vec_dot sums the scaled and offset parts
// separately, so its rounding is relative to both magnitudes, not to their (cancelling) sum.
std::vector<float> min_offsets(GgmlType type, std::vector<uint8_t> row, size_t n) {
  const size_t n_blocks = n / kQK_K;
  for (size_t b = 0; b < n_blocks; ++b) {
    uint8_t* block = row.data() + b * ggml_type_traits(type).type_size;
    switch (type) {
      case GgmlType::Q2_K:
        std::memset(block + offsetof(BlockQ2K, qs), 0, sizeof(BlockQ2K::qs));
        break;
      case GgmlType::Q4_K:
        std::memset(block + offsetof(BlockQ4K, qs), 0, sizeof(BlockQ4K::qs));
        break;
      case GgmlType::Q5_K:
        std::memset(block + offsetof(BlockQ5K, qs), 0, sizeof(BlockQ5K::qs));
        std::memset(block + offsetof(BlockQ5K, qh), 0, sizeof(BlockQ5K::qh));
        break;
      default:
        return std::vector<float>(n, 0.0f);
    }
  }
  std::vector<float> offsets(n);
  dequantize_row(type, row.data(), offsets.data(), static_cast<int64_t>(n));
  return offsets;
}

struct DotCase {
  GgmlType type;
  bool random_blocks;  // random bytes instead of a quantized Gaussian row
};

class VecDot : public ::testing::TestWithParam<DotCase> {};

TEST_P(VecDot, EqualsDoubleDotOfDequantizedRows) {
  const GgmlType type = GetParam().type;
  const GgmlType act_type = vec_dot_activation_type(type);
  const auto traits = ggml_type_traits(type);
  for (size_t n : {size_t{256}, size_t{7 * 256}, size_t{64 * 256}}) {
    const uint32_t seed = static_cast<uint32_t>(n) + static_cast<uint32_t>(type);
    std::vector<uint8_t> weights(*ggml_row_size(type, n));
    if (GetParam().random_blocks) {
      weights = test::random_blocks(type, n / traits.block_size, seed);
      if (type == GgmlType::MXFP4) {  // keep 12·2^(e−128) finite: e in [96, 160)
        for (size_t b = 0; b < weights.size(); b += sizeof(BlockMXFP4))
          weights[b] = 96 + weights[b] % 64;
      }
    } else {
      const std::vector<float> w = test::gaussian_row(n, 0.02f, seed);
      quantize_row(type, w.data(), weights.data(), static_cast<int64_t>(n));
    }
    const std::vector<float> a = test::gaussian_row(n, 1.0f, seed + 1);
    std::vector<uint8_t> activations(*ggml_row_size(act_type, n));
    if (act_type == GgmlType::Q8_0)
      quantize_row_q8_0(a.data(), activations.data(), static_cast<int64_t>(n));
    if (act_type == GgmlType::Q8_K)
      quantize_row_q8_k(a.data(), activations.data(), static_cast<int64_t>(n));
    if (act_type == GgmlType::F32) std::memcpy(activations.data(), a.data(), n * sizeof(float));

    std::vector<float> w_values(n);
    dequantize_row(type, weights.data(), w_values.data(), static_cast<int64_t>(n));
    const std::vector<float> a_values = dequantize_activation(act_type, activations, n);
    const std::vector<float> offsets = min_offsets(type, weights, n);
    double reference = 0, magnitude = 0;
    for (size_t i = 0; i < n; ++i) {
      reference += static_cast<double>(w_values[i]) * a_values[i];
      magnitude += (std::fabs(static_cast<double>(w_values[i])) + std::fabs(offsets[i])) *
                   std::fabs(a_values[i]);
    }
    const float got = vec_dot(type, weights.data(), activations.data(), static_cast<int64_t>(n));

    // Tolerance: vec_dot forms one fp32 term per block (or per lane, ≤ 8 more) from exact integer
    // sums with ≤ 3 fp32 roundings (d_w·d_a, ×sum, − min term), then adds the terms in fp32:
    // by the recursive-summation bound the error is ≤ (terms + 3)·u·Σ|terms|, u = 2^-24, and
    // Σ|terms| ≤ magnitude. The reference's inputs carry ≤ 2 roundings per value (the min
    // subtraction in dequantization, Q8_K's d·q). (blocks + 10)·4u·magnitude covers both with
    // margin (measured errors are ~1e-8·magnitude, the bound 3e-6..1.2e-4·magnitude); a wrong
    // scale, code or sign in one of the 64 (or 512) blocks moves the result by ~1e-2
    // (2e-3)·magnitude.
    const double blocks = traits.block_size == 1 ? 1.0 : static_cast<double>(n / traits.block_size);
    const double tolerance = (blocks + 10) * 4 * 0x1p-24 * magnitude;
    EXPECT_NEAR(got, reference, tolerance) << ggml_type_name(type) << " n=" << n;
  }
}

std::vector<DotCase> all_cases() {
  std::vector<DotCase> cases;
  for (GgmlType type : test::kAllTypes) cases.push_back({type, false});
  for (GgmlType type : test::kBlockTypes) cases.push_back({type, true});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllFormats, VecDot, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) {
                           return test::type_label(info.param.type) +
                                  (info.param.random_blocks ? "_RandomBlocks" : "_Gaussian");
                         });

TEST(VecDot, ActivationTypePerWeightType) {
  EXPECT_EQ(vec_dot_activation_type(GgmlType::Q8_0), GgmlType::Q8_0);
  EXPECT_EQ(vec_dot_activation_type(GgmlType::MXFP4), GgmlType::Q8_0);
  for (GgmlType t : {GgmlType::Q2_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                     GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ1_S, GgmlType::IQ1_M}) {
    EXPECT_EQ(vec_dot_activation_type(t), GgmlType::Q8_K) << ggml_type_name(t);
  }
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
    EXPECT_EQ(vec_dot_activation_type(t), GgmlType::F32) << ggml_type_name(t);
  }
}

}  // namespace
}  // namespace v4::kernels
