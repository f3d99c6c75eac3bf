// The AVX-512 dot products against the scalar reference: bit-identical results for one to four
// activation rows, on random blocks of every byte pattern, and through matmul_rows for every
// token count and split of rows.
#include "kernels/cpu/vec_dot_avx512.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/weight_rows_avx512.h"
#include "tests/unit/kernels/random_weight_row.h"

namespace v4::kernels {
namespace {

using test_support::kQuantized;
using test_support::random_row;

constexpr const char* kNoAvx512 =
    "CPU without AVX-512 (F, BW, VL, DQ, VBMI, VNNI) or V4_CPU_SIMD=avx2: the AVX2 kernels run "
    "instead";

TEST(VecDotAvx512, RowsBitIdenticalToScalarReference) {
  if (!cpu_has_avx512()) GTEST_SKIP() << kNoAvx512;
  std::mt19937 rng(23);
  std::normal_distribution<float> normal(0, 1);
  int covered = 0;
  for (GgmlType t : kQuantized) {
    if (!has_avx512_dot(t)) continue;
    ++covered;
    // 32-value formats also get rows of 1, 3 and 5 blocks: the tails of the four-block step.
    std::vector<int64_t> lengths = {256, 512, 4096};
    if (ggml_type_traits(t).block_size == 32) lengths.insert(lengths.end(), {32, 96, 160});
    for (int64_t n : lengths) {
      for (int trial = 0; trial < 40; ++trial) {
        const std::vector<uint8_t> w = random_row(t, n, rng);
        const size_t act = activation_row_bytes(t, n);
        std::vector<uint8_t> xq(4 * act);
        for (int k = 0; k < 4; ++k) {
          std::vector<float> x(static_cast<size_t>(n));
          for (float& v : x) v = normal(rng) * ((trial + k) % 3 == 0 ? 100.0f : 1.0f);
          quantize_activation_row(t, x.data(), n, &xq[act * static_cast<size_t>(k)]);
        }
        const void* const rows[4] = {&xq[0], &xq[act], &xq[2 * act], &xq[3 * act]};
        for (int count = 1; count <= 4; ++count) {
          float out[4];
          vec_dot_avx512_rows(t, w.data(), rows, count, n, out);
          for (int k = 0; k < count; ++k) {
            const float ref = vec_dot(t, w.data(), rows[k], n);
            ASSERT_EQ(std::memcmp(&ref, &out[k], sizeof(float)), 0)
                << ggml_type_name(t) << " n=" << n << " trial " << trial << " rows " << count
                << " row " << k << ": " << ref << " vs " << out[k];
          }
        }
      }
    }
  }
  EXPECT_EQ(covered, 3) << "MXFP4, IQ2_XXS and Q2_K have AVX-512 kernels";
}

TEST(VecDotAvx512, MatmulRowsEqualsScalarReferenceForEveryTokenCount) {
  if (!cpu_has_avx512()) GTEST_SKIP() << kNoAvx512;
  std::mt19937 rng(29);
  std::normal_distribution<float> normal(0, 1);
  for (GgmlType t : {GgmlType::MXFP4, GgmlType::IQ2_XXS, GgmlType::Q2_K, GgmlType::Q8_0}) {
    const int64_t cols = 512, rows = 7;
    std::vector<uint8_t> weights;
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<uint8_t> row = random_row(t, cols, rng);
      weights.insert(weights.end(), row.begin(), row.end());
    }
    const MatrixView w{t, weights.data(), cols, rows, weights.size() / rows};
    const size_t act = activation_row_bytes(t, cols);
    for (int64_t n_tokens = 1; n_tokens <= 9; ++n_tokens) {
      std::vector<uint8_t> xq(act * static_cast<size_t>(n_tokens));
      for (int64_t k = 0; k < n_tokens; ++k) {
        std::vector<float> x(cols);
        for (float& v : x) v = normal(rng);
        quantize_activation_row(t, x.data(), cols, &xq[act * static_cast<size_t>(k)]);
      }
      std::vector<float> y(static_cast<size_t>(n_tokens * rows));
      matmul_rows(w, xq.data(), n_tokens, y.data(), rows, 0, 3);
      matmul_rows(w, xq.data(), n_tokens, y.data(), rows, 3, rows);
      for (int64_t k = 0; k < n_tokens; ++k) {
        for (int64_t r = 0; r < rows; ++r) {
          const float ref = vec_dot(t, &weights[static_cast<size_t>(r) * w.row_bytes],
                                    &xq[act * static_cast<size_t>(k)], cols);
          const float got = y[static_cast<size_t>(k * rows + r)];
          ASSERT_EQ(std::memcmp(&ref, &got, sizeof(float)), 0)
              << ggml_type_name(t) << " tokens " << n_tokens << " token " << k << " row " << r;
        }
      }
    }
  }
}

// One to four Q8_0 or MXFP4 weight rows against one to three activation rows: each result equals
// the single-row reference bit for bit, for random weight bytes (every MXFP4 code, Q8_0's -128
// included) and every tail of the four-block step.
TEST(VecDotAvx512, WeightRowsBitIdenticalToScalarReference) {
  if (!cpu_has_avx512()) GTEST_SKIP() << kNoAvx512;
  std::mt19937 rng(41);
  std::normal_distribution<float> normal(0, 1);
  int minus_128 = 0;
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4}) {
    ASSERT_TRUE(has_avx512_weight_rows(t));
    const size_t block = ggml_type_traits(t).type_size;
    for (int64_t n : {32, 64, 96, 128, 160, 1024, 4096}) {
      for (int trial = 0; trial < 20; ++trial) {
        std::vector<std::vector<uint8_t>> w;
        for (int r = 0; r < 4; ++r) {
          w.push_back(random_row(t, n, rng));
          if (t != GgmlType::Q8_0) continue;
          for (size_t b = 0; b < w.back().size(); b += block)
            for (int j = 0; j < kQK8_0; ++j) minus_128 += w.back()[b + 2 + j] == 0x80;
        }
        const size_t act = activation_row_bytes(t, n);
        std::vector<uint8_t> xq(3 * act);
        for (int u = 0; u < 3; ++u) {
          std::vector<float> x(static_cast<size_t>(n));
          for (float& v : x) v = normal(rng) * ((trial + u) % 3 == 0 ? 100.0f : 1.0f);
          quantize_activation_row(t, x.data(), n, &xq[act * static_cast<size_t>(u)]);
        }
        const void* const rows[4] = {w[0].data(), w[1].data(), w[2].data(), w[3].data()};
        const void* const acts[3] = {xq.data(), &xq[act], &xq[2 * act]};
        for (int count = 1; count <= 4; ++count) {
          for (int tokens = 1; tokens <= 3; ++tokens) {
            float out[12];
            vec_dot_avx512_weight_rows(t, rows, count, acts, tokens, n, out);
            for (int k = 0; k < count; ++k) {
              for (int u = 0; u < tokens; ++u) {
                const float ref = vec_dot(t, rows[k], acts[u], n);
                ASSERT_EQ(std::memcmp(&ref, &out[k * tokens + u], sizeof(float)), 0)
                    << ggml_type_name(t) << " n=" << n << " trial " << trial << " rows " << count
                    << " tokens " << tokens << " row " << k << " token " << u << ": " << ref
                    << " vs " << out[k * tokens + u];
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(minus_128, 0) << "no Q8_0 weight byte of -128 was tested";
  EXPECT_FALSE(has_avx512_weight_rows(GgmlType::IQ2_XXS));
}

// One to four float weight rows against one activation row, and one weight row against one to
// four activation rows: each result equals the single-row reference bit for bit, for every tail
// length (n mod 16 and n mod 8) and magnitude class.
TEST(VecDotAvx512, FloatWeightRowsBitIdenticalToScalarReference) {
  if (!cpu_has_avx512()) GTEST_SKIP() << kNoAvx512;
  std::mt19937 rng(31);
  std::normal_distribution<float> normal(0, 1);
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
    ASSERT_TRUE(has_avx512_float_rows(t));
    const size_t value_bytes = ggml_type_traits(t).type_size;
    for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 24, 31, 63, 64, 100, 1024, 4099}) {
      for (int trial = 0; trial < 10; ++trial) {
        const float scale = trial % 3 == 0 ? 1e-4f : trial % 3 == 1 ? 1e3f : 1.0f;
        std::vector<std::vector<uint8_t>> w(
            4, std::vector<uint8_t>(static_cast<size_t>(n) * value_bytes));
        for (auto& row : w) {
          for (int64_t i = 0; i < n; ++i) {
            const float v = normal(rng) * scale;
            uint8_t* at = &row[static_cast<size_t>(i) * value_bytes];
            if (t == GgmlType::F32) {
              std::memcpy(at, &v, 4);
            } else {
              const uint16_t h = t == GgmlType::F16 ? fp32_to_fp16(v) : fp32_to_bf16(v);
              std::memcpy(at, &h, 2);
            }
          }
        }
        std::vector<std::vector<float>> x(4, std::vector<float>(static_cast<size_t>(n)));
        for (auto& row : x) {
          for (float& v : row) v = normal(rng);
        }
        const void* const rows[4] = {w[0].data(), w[1].data(), w[2].data(), w[3].data()};
        const void* const acts[4] = {x[0].data(), x[1].data(), x[2].data(), x[3].data()};
        for (int count = 1; count <= 4; ++count) {
          float out[4];
          vec_dot_avx512_float_rows(t, rows, count, x[0].data(), n, out);
          float by_token[4];
          vec_dot_avx512_float_tokens(t, rows[0], acts, count, n, by_token);
          for (int k = 0; k < count; ++k) {
            const float ref = vec_dot(t, rows[k], x[0].data(), n);
            ASSERT_EQ(std::memcmp(&ref, &out[k], sizeof(float)), 0)
                << ggml_type_name(t) << " n=" << n << " trial " << trial << " rows " << count
                << " row " << k << ": " << ref << " vs " << out[k];
            const float ref_token = vec_dot(t, rows[0], acts[k], n);
            ASSERT_EQ(std::memcmp(&ref_token, &by_token[k], sizeof(float)), 0)
                << ggml_type_name(t) << " n=" << n << " trial " << trial << " tokens " << count
                << " token " << k << ": " << ref_token << " vs " << by_token[k];
          }
        }
      }
    }
  }
  EXPECT_FALSE(has_avx512_float_rows(GgmlType::Q8_0));
}

// Float matrices over the four-row kernel's 16 MiB take the AVX2 kernel for one token and the
// token-pair kernel for several: every output equals the reference, for any token count and
// split of rows.
TEST(VecDotAvx512, LargeFloatMatmulEqualsScalarReferenceForEveryTokenCount) {
  if (!cpu_has_avx512()) GTEST_SKIP() << kNoAvx512;
  std::mt19937 rng(37);
  std::normal_distribution<float> normal(0, 1);
  const int64_t cols = 4096 + 40, rows = 2050;  // 16.9 MB of BF16: past the four-row cut
  std::vector<uint16_t> weights(static_cast<size_t>(cols * rows));
  for (uint16_t& v : weights) v = fp32_to_bf16(normal(rng));
  const MatrixView w{GgmlType::BF16, reinterpret_cast<const uint8_t*>(weights.data()), cols, rows,
                     static_cast<size_t>(cols) * 2};
  ASSERT_GT(static_cast<size_t>(rows) * w.row_bytes, size_t{16} << 20);
  for (int64_t n_tokens : {1, 2, 3, 5}) {
    std::vector<float> x(static_cast<size_t>(cols * n_tokens));
    for (float& v : x) v = normal(rng);
    const auto* xq = reinterpret_cast<const uint8_t*>(x.data());
    std::vector<float> y(static_cast<size_t>(n_tokens * rows));
    matmul_rows(w, xq, n_tokens, y.data(), rows, 0, 11);
    matmul_rows(w, xq, n_tokens, y.data(), rows, 11, rows);
    for (int64_t k = 0; k < n_tokens; ++k) {
      for (int64_t r = 0; r < rows; ++r) {
        const float ref = vec_dot(GgmlType::BF16, &weights[static_cast<size_t>(r * cols)],
                                  &x[static_cast<size_t>(k * cols)], cols);
        const float got = y[static_cast<size_t>(k * rows + r)];
        ASSERT_EQ(std::memcmp(&ref, &got, sizeof(float)), 0)
            << "tokens " << n_tokens << " token " << k << " row " << r;
      }
    }
  }
}

TEST(VecDotAvx512, OnlyTheKernelledFormatsClaimOne) {
  EXPECT_TRUE(has_avx512_dot(GgmlType::IQ2_XXS));
  EXPECT_TRUE(has_avx512_dot(GgmlType::Q2_K));
  EXPECT_FALSE(has_avx512_dot(GgmlType::Q8_0));
  EXPECT_TRUE(has_avx512_dot(GgmlType::MXFP4));
  EXPECT_FALSE(has_avx512_dot(GgmlType::Q4_K));
  EXPECT_FALSE(has_avx512_dot(GgmlType::F16));
  EXPECT_FALSE(has_avx512_dot(GgmlType::I32));
}

}  // namespace
}  // namespace v4::kernels
