// The AVX2 dot products against the scalar reference: bit-identical results (the integer block
// sums are exact and the float scaling follows the reference's order), on random blocks of every
// byte pattern, for one block and for many.
#include "kernels/cpu/vec_dot_avx2.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/quant.h"
#include "tests/unit/kernels/random_weight_row.h"

namespace v4::kernels {
namespace {

using test_support::kQuantized;
using test_support::random_row;

TEST(VecDotAvx2, BitIdenticalToScalarReference) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "CPU without AVX2: only the scalar path runs here";
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0, 1);
  for (GgmlType t : kQuantized) {
    ASSERT_TRUE(has_avx2_dot(t)) << ggml_type_name(t);
    for (int64_t n : {256, 512, 4096}) {
      for (int trial = 0; trial < 50; ++trial) {
        const std::vector<uint8_t> w = random_row(t, n, rng);
        std::vector<float> x(static_cast<size_t>(n));
        for (float& v : x) v = normal(rng) * (trial % 3 == 0 ? 100.0f : 1.0f);
        std::vector<uint8_t> xq(activation_row_bytes(t, n));
        quantize_activation_row(t, x.data(), n, xq.data());
        const float ref = vec_dot(t, w.data(), xq.data(), n);
        const float simd = vec_dot_avx2(t, w.data(), xq.data(), n);
        ASSERT_EQ(std::memcmp(&ref, &simd, sizeof(float)), 0)
            << ggml_type_name(t) << " n=" << n << " trial " << trial << ": " << ref << " vs "
            << simd;
      }
    }
  }
}

// Float weights: random bit patterns of every finite F16 / BF16 / F32 magnitude class, lengths
// that leave tails of many sizes (n mod 32) including rows shorter than one register.
TEST(VecDotAvx2, FloatWeightsBitIdenticalToScalarReference) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "CPU without AVX2: only the scalar path runs here";
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0, 1);
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
    ASSERT_TRUE(has_avx2_dot(t));
    for (int64_t n : {1, 7, 8, 9, 15, 16, 31, 32, 33, 63, 64, 100, 1024, 4096, 4099}) {
      for (int trial = 0; trial < 20; ++trial) {
        std::vector<float> values(static_cast<size_t>(n));
        const float scale = trial % 4 == 0 ? 1e-4f : trial % 4 == 1 ? 1e3f : 1.0f;
        for (float& v : values) v = normal(rng) * scale;
        std::vector<uint8_t> w(static_cast<size_t>(n) * ggml_type_traits(t).type_size);
        for (int64_t i = 0; i < n; ++i) {
          const uint16_t h = t == GgmlType::F16 ? fp32_to_fp16(values[static_cast<size_t>(i)])
                                                : fp32_to_bf16(values[static_cast<size_t>(i)]);
          if (t == GgmlType::F32) {
            std::memcpy(&w[static_cast<size_t>(i) * 4], &values[static_cast<size_t>(i)], 4);
          } else {
            std::memcpy(&w[static_cast<size_t>(i) * 2], &h, 2);
          }
        }
        std::vector<float> x(static_cast<size_t>(n));
        for (float& v : x) v = normal(rng);
        const float ref = vec_dot(t, w.data(), x.data(), n);
        const float simd = vec_dot_avx2(t, w.data(), x.data(), n);
        ASSERT_EQ(std::memcmp(&ref, &simd, sizeof(float)), 0)
            << ggml_type_name(t) << " n=" << n << " trial " << trial << ": " << ref << " vs "
            << simd;
      }
    }
  }
}

// The four-row and two/three-row kernels and matmul_rows' grouping of tokens: every output equals
// the single-row dot of its token bit for bit, for every batch size and split of rows.
TEST(VecDotAvx2, FourRowKernelAndMatmulEqualTheSingleRowDotBitForBit) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "CPU without AVX2: only the scalar path runs here";
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0, 1);
  for (GgmlType t : kQuantized) {
    const int64_t cols = 512, rows = 11;  // a split of 2 and 9: groups of four and a rest
    std::vector<uint8_t> weights;
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<uint8_t> row = random_row(t, cols, rng);
      weights.insert(weights.end(), row.begin(), row.end());
    }
    const MatrixView w{t, weights.data(), cols, rows, weights.size() / rows};
    for (int64_t n_tokens = 1; n_tokens <= 9; ++n_tokens) {
      const size_t act = activation_row_bytes(t, cols);
      std::vector<uint8_t> xq(act * static_cast<size_t>(n_tokens));
      for (int64_t k = 0; k < n_tokens; ++k) {
        std::vector<float> x(cols);
        for (float& v : x) v = normal(rng) * (k % 2 ? 30.0f : 1.0f);
        quantize_activation_row(t, x.data(), cols, &xq[act * static_cast<size_t>(k)]);
      }
      std::vector<float> y(static_cast<size_t>(n_tokens * rows));
      matmul_rows(w, xq.data(), n_tokens, y.data(), rows, 0, 2);
      matmul_rows(w, xq.data(), n_tokens, y.data(), rows, 2, rows);
      for (int64_t k = 0; k < n_tokens; ++k) {
        for (int64_t r = 0; r < rows; ++r) {
          const float single = vec_dot_avx2(t, &weights[static_cast<size_t>(r) * w.row_bytes],
                                            &xq[act * static_cast<size_t>(k)], cols);
          const float got = y[static_cast<size_t>(k * rows + r)];
          ASSERT_EQ(std::memcmp(&single, &got, sizeof(float)), 0)
              << ggml_type_name(t) << " tokens " << n_tokens << " token " << k << " row " << r;
        }
      }
      if (n_tokens == 2 || n_tokens == 3) {
        const void* const few[3] = {&xq[0], &xq[act], &xq[act * static_cast<size_t>(n_tokens - 1)]};
        float out[3];
        vec_dot_avx2_few(t, weights.data(), few, static_cast<int>(n_tokens), cols, out);
        for (int k = 0; k < n_tokens; ++k) {
          const float single = vec_dot_avx2(t, weights.data(), few[k], cols);
          EXPECT_EQ(std::memcmp(&single, &out[k], sizeof(float)), 0)
              << ggml_type_name(t) << " rows " << n_tokens << " row " << k;
        }
      }
      if (n_tokens == 4) {
        const void* const four[4] = {&xq[0], &xq[act], &xq[2 * act], &xq[3 * act]};
        float out[4];
        vec_dot_avx2_x4(t, weights.data(), four, cols, out);
        for (int k = 0; k < 4; ++k) {
          const float single = vec_dot_avx2(t, weights.data(), four[k], cols);
          EXPECT_EQ(std::memcmp(&single, &out[k], sizeof(float)), 0) << ggml_type_name(t);
        }
      }
    }
  }
  for (GgmlType t : kQuantized) EXPECT_TRUE(has_avx2_dot_x4(t)) << ggml_type_name(t);
}

TEST(VecDotAvx2, BestFallsBackToScalarForOtherTypes) {
  std::vector<uint8_t> w(16, 0);
  std::vector<float> x(4, 1.0f);
  EXPECT_FALSE(has_avx2_dot(GgmlType::I32));
  EXPECT_FALSE(has_avx2_dot_x4(GgmlType::F16)) << "float weights have no shared-block kernel";
  EXPECT_EQ(vec_dot_best(GgmlType::F32, w.data(), x.data(), 4), 0.0f);
}

}  // namespace
}  // namespace v4::kernels
