// The grouped kernels (16 repacked weight rows per SIMD register) of Q8_0, MXFP4, IQ2_XXS and
// Q2_K against the scalar reference: bit-identical outputs for every token count from its
// threshold on, for row ranges that are whole groups, that start off a group boundary, and that
// leave a tail of rows.
#include "kernels/cpu/row_group_matmul.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/quant.h"
#include "tests/unit/kernels/random_weight_row.h"

namespace v4::kernels {
namespace {

using test_support::random_row;

struct Case {
  std::vector<uint8_t> weights;
  std::vector<uint8_t> xq;
  MatrixView w;
  size_t act = 0;
};

Case make_case(GgmlType type, int64_t rows, int64_t cols, int64_t n_tokens, std::mt19937& rng) {
  Case c;
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<uint8_t> row = random_row(type, cols, rng);
    c.weights.insert(c.weights.end(), row.begin(), row.end());
  }
  c.w = MatrixView{type, c.weights.data(), cols, rows, c.weights.size() / rows};
  c.act = activation_row_bytes(type, cols);
  c.xq.resize(c.act * static_cast<size_t>(n_tokens));
  std::normal_distribution<float> normal(0, 1);
  for (int64_t t = 0; t < n_tokens; ++t) {
    std::vector<float> x(static_cast<size_t>(cols));
    for (float& v : x) v = normal(rng) * (t % 3 == 0 ? 50.0f : 1.0f);
    quantize_activation_row(type, x.data(), cols, &c.xq[c.act * static_cast<size_t>(t)]);
  }
  return c;
}

void expect_reference(const Case& c, const std::vector<float>& y, int64_t n_tokens,
                      int64_t row_begin, int64_t row_end) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = row_begin; r < row_end; ++r) {
      const float ref = vec_dot(c.w.type, c.weights.data() + r * c.w.row_bytes,
                                &c.xq[c.act * static_cast<size_t>(t)], c.w.cols);
      const float got = y[static_cast<size_t>(t * c.w.rows + r)];
      ASSERT_EQ(std::memcmp(&ref, &got, sizeof(float)), 0)
          << ggml_type_name(c.w.type) << " rows " << c.w.rows << " cols " << c.w.cols << " tokens "
          << n_tokens << " token " << t << " row " << r << ": " << ref << " vs " << got;
    }
  }
}

TEST(RowGroupMatmul, GroupsBitIdenticalToScalarReference) {
  if (!row_groups_available(GgmlType::Q8_0)) {
    GTEST_SKIP() << "CPU without AVX-512 VNNI or V4_CPU_SIMD=avx2: the row-at-a-time kernels run";
  }
  std::mt19937 rng(41);
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::MXFP4, GgmlType::IQ2_XXS, GgmlType::Q2_K}) {
    ASSERT_TRUE(row_groups_available(type));
    const int64_t block = ggml_type_traits(type).block_size;
    for (int64_t cols : {block, 3 * block, int64_t{4096}}) {
      for (int64_t n_tokens : {1, 3, 4, 5, 8, 9, 13}) {
        const Case c = make_case(type, 32, cols, n_tokens, rng);
        std::vector<float> y(static_cast<size_t>(n_tokens * 32));
        matmul_row_groups(c.w, c.xq.data(), n_tokens, y.data(), 32, 16, 32);
        expect_reference(c, y, n_tokens, 16, 32);
        matmul_row_groups(c.w, c.xq.data(), n_tokens, y.data(), 32, 0, 16);
        expect_reference(c, y, n_tokens, 0, 32);
      }
    }
  }
  EXPECT_FALSE(row_groups_available(GgmlType::IQ1_M));
}

// Through matmul_rows, which takes the grouped kernel from kRowGroupMinTokens tokens: any split
// of the rows among threads gives the reference result.
TEST(RowGroupMatmul, MatmulRowsAnySplitBitIdenticalToScalarReference) {
  std::mt19937 rng(43);
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::MXFP4, GgmlType::IQ2_XXS, GgmlType::Q2_K}) {
    for (int64_t n_tokens : {kRowGroupMinTokens - 1, kRowGroupMinTokens, int64_t{17}}) {
      const int64_t rows = 53, cols = 256;
      const Case c = make_case(type, rows, cols, n_tokens, rng);
      std::vector<float> y(static_cast<size_t>(n_tokens * rows));
      matmul_rows(c.w, c.xq.data(), n_tokens, y.data(), rows, 0, 3);      // a few rows
      matmul_rows(c.w, c.xq.data(), n_tokens, y.data(), rows, 3, 37);     // two groups and a tail
      matmul_rows(c.w, c.xq.data(), n_tokens, y.data(), rows, 37, rows);  // one group
      expect_reference(c, y, n_tokens, 0, rows);
    }
  }
}

}  // namespace
}  // namespace v4::kernels
