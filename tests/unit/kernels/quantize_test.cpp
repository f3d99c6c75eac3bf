// quantize_row() for all 13 spec §6 formats (quantize_simple.cpp, quantize_k.cpp,
// quantize_iq2.cpp, quantize_iq1.cpp): what it writes dequantizes close to its input, with a
// stated bound per format; exactly representable inputs come back exactly; zero stays zero.
// Bit-exactness with gguf-py's encoders (Q8_0, MXFP4, BF16, F16) is tests/python.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_tables.h"
#include "quant_test_inputs.h"

namespace v4::kernels {
namespace {

// ‖dequantize(quantize(x)) − x‖ / ‖x‖ over a row.
double relative_rms_error(GgmlType type, const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> blocks(*ggml_row_size(type, static_cast<uint64_t>(n)));
  std::vector<float> y(x.size());
  quantize_row(type, x.data(), blocks.data(), n);
  dequantize_row(type, blocks.data(), y.data(), n);
  double err2 = 0, x2 = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err2 += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    x2 += static_cast<double>(x[i]) * x[i];
  }
  return std::sqrt(err2 / x2);
}

struct ErrorBound {
  GgmlType type;
  double max_relative_rms;
};

// Bounds for Gaussian input. For the uniform-grid formats the expected error is the step Δ over
// √12, with Δ set by the largest value(s) of a group: for n Gaussian samples the largest |x| is
// ≈2.1σ (n = 32) or ≈1.8σ (n = 16) and the range max−min ≈ twice that. For the IQ (codebook)
// formats we use the rate-distortion limit of a Gaussian source at R bits per value, 2^−R: no
// encoder can beat it, and a per-group grid search with a shared 3–4-bit scale should stay
// within 1.6× of it. A decoding or packing error (wrong row, sign, nibble or scale) lands near
// or above 1.0 for every format.
const ErrorBound kBounds[] = {
    {GgmlType::F32, 0.0},  // lossless
    // F16/BF16: round to nearest even loses at most half an ulp, 2^-11 / 2^-8 of the value.
    {GgmlType::F16, 0x1p-11},
    {GgmlType::BF16, 0x1p-8},
    // Q8_0: Δ = 2.1σ/127 → 0.005σ; 0.008 allows a 32-group max up to 3.5σ.
    {GgmlType::Q8_0, 0.008},
    // Q6_K: symmetric 6-bit codes, Δ = 1.8σ/32 per 16 values → 0.016; 8-bit sub-scales add a
    // little.
    {GgmlType::Q6_K, 0.025},
    // Q5_K: 31 steps over a 32-value range ≈4.2σ → 0.039; 6-bit scales and mins.
    {GgmlType::Q5_K, 0.05},
    // Q4_K: 15 steps over the same range → 0.081 (the least-squares fit does a bit better).
    {GgmlType::Q4_K, 0.10},
    // Q2_K: 3 steps over a 16-value range ≈3.6σ → 0.35, 4-bit scales and mins on top.
    {GgmlType::Q2_K, 0.38},
    // MXFP4: E2M1 has one mantissa bit (relative spacing up to 1/3) and a power-of-two scale
    // that leaves amax anywhere in [8, 16) code units; ≈0.12 expected.
    {GgmlType::MXFP4, 0.15},
    // IQ: 1.6 × 2^−R with R = bits per value of the block (66, 74, 50, 56 bytes per 256).
    {GgmlType::IQ2_XS, 1.6 * 0.2012},   // R = 2.3125
    {GgmlType::IQ2_XXS, 1.6 * 0.2397},  // R = 2.0625
    {GgmlType::IQ1_M, 1.6 * 0.2973},    // R = 1.75
    {GgmlType::IQ1_S, 1.6 * 0.3385},    // R = 1.5625
};

class QuantizeError : public ::testing::TestWithParam<ErrorBound> {};

TEST_P(QuantizeError, GaussianRowDequantizesWithinBound) {
  const ErrorBound bound = GetParam();
  // σ = 0.02 is typical of weight tensors; 1 and 300 check the fp16 scale ranges.
  for (float sigma : {0.02f, 1.0f, 300.0f}) {
    const std::vector<float> x = test::gaussian_row(16 * 256, sigma, 11);
    const double error = relative_rms_error(bound.type, x);
    EXPECT_LE(error, bound.max_relative_rms) << "sigma " << sigma;
  }
}

TEST_P(QuantizeError, BlocksAreIndependentOfTheirNeighboursMagnitude) {
  // Blocks at 1e-3 and 1e3 side by side encode exactly as each would alone: no state crosses a
  // block boundary (spec §6: every block carries its own scales).
  const ErrorBound bound = GetParam();
  std::vector<float> x = test::gaussian_row(4 * 256, 1.0f, 12);
  for (size_t i = 0; i < x.size(); ++i) x[i] *= (i / 256) % 2 ? 1e3f : 1e-3f;
  for (size_t block = 0; block < 4; ++block) {
    const std::vector<float> part(x.begin() + 256 * block, x.begin() + 256 * (block + 1));
    std::vector<uint8_t> alone(*ggml_row_size(bound.type, 256)),
        together(*ggml_row_size(bound.type, x.size()));
    quantize_row(bound.type, part.data(), alone.data(), 256);
    quantize_row(bound.type, x.data(), together.data(), static_cast<int64_t>(x.size()));
    EXPECT_EQ(std::memcmp(alone.data(), together.data() + alone.size() * block, alone.size()), 0)
        << "block " << block;
  }
}

TEST_P(QuantizeError, ZeroRowStaysZero) {
  const GgmlType type = GetParam().type;
  const std::vector<float> x(512, 0.0f);
  std::vector<uint8_t> blocks(*ggml_row_size(type, 512), 0xAB);
  std::vector<float> y(512, 1.0f);
  quantize_row(type, x.data(), blocks.data(), 512);
  dequantize_row(type, blocks.data(), y.data(), 512);
  for (float v : y) ASSERT_EQ(v, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(AllFormats, QuantizeError, ::testing::ValuesIn(kBounds),
                         [](const auto& info) { return test::type_label(info.param.type); });

TEST(Quantize, Q8_0RoundTripsValuesOnItsGrid) {
  // d = 1/64 is exact in fp16; codes −127..127 with one ±127 fix amax = 127·d.
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = static_cast<float>((i * 37) % 255 - 127) / 64;
  x[0] = 127.0f / 64;
  x[32] = -127.0f / 64;
  std::vector<uint8_t> blocks(*ggml_row_size(GgmlType::Q8_0, 64));
  std::vector<float> y(64);
  quantize_row(GgmlType::Q8_0, x.data(), blocks.data(), 64);
  dequantize_row(GgmlType::Q8_0, blocks.data(), y.data(), 64);
  EXPECT_EQ(x, y);
}

TEST(Quantize, MxFp4RoundTripsValuesOnItsGrid) {
  // Scale 2^-3 · doubled E2M1 values; the block's amax 12·2^-3 = 1.5 gives e = 0 − 2 + 127.
  const float grid[] = {0, 1, 2, 3, 4, 6, 8, 12};
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = (i % 2 ? -1 : 1) * grid[(i * 5) % 8] * 0.125f;
  x[3] = 12 * 0.125f;
  std::vector<uint8_t> blocks(*ggml_row_size(GgmlType::MXFP4, 32));
  std::vector<float> y(32);
  quantize_row(GgmlType::MXFP4, x.data(), blocks.data(), 32);
  EXPECT_EQ(blocks[0], 125);
  dequantize_row(GgmlType::MXFP4, blocks.data(), y.data(), 32);
  EXPECT_EQ(x, y);
}

TEST(Quantize, FloatTypesRoundToNearestEven) {
  // 1 + 2^-11 is halfway between fp16 1 and 1 + 2^-10: ties go to the even mantissa (1).
  const float x[2] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f};
  uint16_t h[2];
  quantize_row(GgmlType::F16, x, h, 2);
  EXPECT_EQ(h[0], 0x3C00);
  EXPECT_EQ(h[1], 0x3C02);
  const float b[2] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f};
  quantize_row(GgmlType::BF16, b, h, 2);
  EXPECT_EQ(h[0], 0x3F80);
  EXPECT_EQ(h[1], 0x3F82);
}

// Index of the first grid row for which `wanted` holds.
template <class Predicate>
int find_row(const uint64_t* grid, int rows, Predicate wanted) {
  for (int r = 0; r < rows; ++r) {
    if (wanted(grid[r])) return r;
  }
  return -1;
}

bool has_byte(uint64_t row, uint8_t value) {
  for (int j = 0; j < 8; ++j) {
    if (static_cast<uint8_t>(row >> (8 * j)) == value) return true;
  }
  return false;
}

// Random IQ blocks whose every scale unit sits at the largest sub-scale (nibble 15 / s = 7) and
// holds a value of the largest magnitude (an IQ2 row with a 43, an IQ1 row with both −1 and +1,
// which matches either δ), with d = 2^-7. Their values are then exactly representable and the
// block-level scale recoverable, so a quantizer that finds the nearest grid row must return
// them unchanged: a broken lattice map or neighbour list (spec §6 grids) shows up as a mismatch.
std::vector<uint8_t> blocks_on_grid(GgmlType type, size_t n_blocks, uint32_t seed) {
  std::vector<uint8_t> bytes = test::random_blocks(type, n_blocks, seed);
  const uint16_t d16 = fp32_to_fp16(0x1p-7f);
  const int row43_xxs = find_row(iq2xxs_grid, 256, [](uint64_t r) { return has_byte(r, 43); });
  const int row43_xs = find_row(iq2xs_grid, 512, [](uint64_t r) { return has_byte(r, 43); });
  const int row_pm =
      find_row(iq1s_grid, 2048, [](uint64_t r) { return has_byte(r, 0x01) && has_byte(r, 0xFF); });
  for (size_t i = 0; i < n_blocks; ++i) {
    uint8_t* block = bytes.data() + i * ggml_type_traits(type).type_size;
    if (type == GgmlType::IQ2_XXS) {
      auto* b = reinterpret_cast<BlockIQ2XXS*>(block);
      b->d = d16;
      for (int g = 0; g < 8; ++g) {
        uint32_t aux[2];
        std::memcpy(aux, b->qs + 4 * g, sizeof(aux));
        aux[0] = (aux[0] & ~0xFFu) | static_cast<uint32_t>(row43_xxs);
        aux[1] |= 0xFu << 28;
        std::memcpy(b->qs + 4 * g, aux, sizeof(aux));
      }
    } else if (type == GgmlType::IQ2_XS) {
      auto* b = reinterpret_cast<BlockIQ2XS*>(block);
      b->d = d16;
      std::memset(b->scales, 0xFF, sizeof(b->scales));
      for (int u = 0; u < 16; ++u) {
        b->qs[2 * u] = static_cast<uint16_t>((b->qs[2 * u] & ~511) | row43_xs);
      }
    } else if (type == GgmlType::IQ1_S) {
      auto* b = reinterpret_cast<BlockIQ1S*>(block);
      b->d = d16;
      for (int g = 0; g < 8; ++g) {
        b->qs[4 * g] = static_cast<uint8_t>(row_pm & 0xFF);
        b->qh[g] = static_cast<uint16_t>((b->qh[g] & ~0x7007) | 0x7000 | (row_pm >> 8));
      }
    } else {
      auto* b = reinterpret_cast<BlockIQ1M*>(block);
      uint16_t words[4];
      for (int w = 0; w < 4; ++w)
        words[w] = static_cast<uint16_t>(0x0FFF | ((d16 >> (4 * w)) & 0xF) << 12);
      std::memcpy(b->scales, words, sizeof(words));
      for (int u = 0; u < 16; ++u) {  // the first octet of unit u: qs[2u], low nibble of qh[u]
        b->qs[2 * u] = static_cast<uint8_t>(row_pm & 0xFF);
        b->qh[u] = static_cast<uint8_t>((b->qh[u] & 0xF8) | (row_pm >> 8));
      }
    }
  }
  return bytes;
}

class IqQuantize : public ::testing::TestWithParam<GgmlType> {};

TEST_P(IqQuantize, ValuesOnTheGridRoundTripExactly) {
  const GgmlType type = GetParam();
  constexpr size_t kBlocks = 32;
  const int64_t n = kBlocks * 256;
  const std::vector<uint8_t> blocks = blocks_on_grid(type, kBlocks, 21);
  std::vector<float> x(n), y(n);
  dequantize_row(type, blocks.data(), x.data(), n);
  std::vector<uint8_t> requantized(blocks.size());
  quantize_row(type, x.data(), requantized.data(), n);
  dequantize_row(type, requantized.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(x[i], y[i]) << "value " << i;
}

TEST_P(IqQuantize, ConcurrentCallsEncodeAsOneThreadDoes) {
  // The lattice tables are built lazily on first use (iq_grid_search.h): callers racing for
  // them, and any number of threads, must get the same bytes as a single serial call.
  const GgmlType type = GetParam();
  const std::vector<float> x = test::gaussian_row(8 * 256, 1.0f, 31);
  const size_t size = *ggml_row_size(type, x.size());
  std::vector<uint8_t> parallel[2] = {std::vector<uint8_t>(size), std::vector<uint8_t>(size)};
  std::thread other([&] { quantize_row(type, x.data(), parallel[1].data(), 8 * 256); });
  quantize_row(type, x.data(), parallel[0].data(), 8 * 256);
  other.join();
  std::vector<uint8_t> serial(size);
  quantize_row(type, x.data(), serial.data(), 8 * 256);
  EXPECT_EQ(parallel[0], serial);
  EXPECT_EQ(parallel[1], serial);
}

INSTANTIATE_TEST_SUITE_P(IqFormats, IqQuantize,
                         ::testing::Values(GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ1_S,
                                           GgmlType::IQ1_M),
                         [](const auto& info) { return test::type_label(info.param); });

TEST(Quantize, F16RowsWidenLikeFp16ToFp32ForAllPatterns) {
  // dequantize_row's F16 path is a branch-free, vectorised rewrite of fp16_to_fp32: every
  // pattern (zeros, subnormals, inf, quiet and signalling NaNs) must keep the same bits, through
  // the chunked loop and its scalar tail (row lengths 65536 − offset).
  std::vector<uint16_t> halves(65536 + 15);
  for (size_t i = 0; i < halves.size(); ++i) halves[i] = static_cast<uint16_t>(i * 40503u);
  std::vector<float> out(65536);
  for (int offset : {0, 1, 7, 15}) {
    const int64_t n = 65536 - offset;
    dequantize_row(GgmlType::F16, halves.data() + offset, out.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(std::bit_cast<uint32_t>(out[i]),
                std::bit_cast<uint32_t>(fp16_to_fp32(halves[offset + i])))
          << "half 0x" << std::hex << halves[offset + i];
    }
  }
}

TEST(Quantize, SupportsExactlyTheSpecFormats) {
  for (GgmlType type : test::kAllTypes) EXPECT_TRUE(can_quantize(type)) << ggml_type_name(type);
  EXPECT_FALSE(can_quantize(GgmlType::Q4_0));
  EXPECT_FALSE(can_quantize(GgmlType::IQ3_S));
}

}  // namespace
}  // namespace v4::kernels
