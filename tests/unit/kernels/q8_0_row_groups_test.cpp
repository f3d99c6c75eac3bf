// The grouped Q8_0 kernel (16 repacked weight rows per SIMD register) against the scalar
// reference: bit-identical outputs for every token count from its threshold on, for row ranges
// that are whole groups, that start off a group boundary, and that leave a tail of rows.
#include "kernels/cpu/q8_0_row_groups.h"

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

Case make_case(int64_t rows, int64_t cols, int64_t n_tokens, std::mt19937& rng) {
  Case c;
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<uint8_t> row = random_row(GgmlType::Q8_0, cols, rng);
    c.weights.insert(c.weights.end(), row.begin(), row.end());
  }
  c.w = MatrixView{GgmlType::Q8_0, c.weights.data(), cols, rows, c.weights.size() / rows};
  c.act = activation_row_bytes(GgmlType::Q8_0, cols);
  c.xq.resize(c.act * static_cast<size_t>(n_tokens));
  std::normal_distribution<float> normal(0, 1);
  for (int64_t t = 0; t < n_tokens; ++t) {
    std::vector<float> x(static_cast<size_t>(cols));
    for (float& v : x) v = normal(rng) * (t % 3 == 0 ? 50.0f : 1.0f);
    quantize_activation_row(GgmlType::Q8_0, x.data(), cols, &c.xq[c.act * static_cast<size_t>(t)]);
  }
  return c;
}

void expect_reference(const Case& c, const std::vector<float>& y, int64_t n_tokens,
                      int64_t row_begin, int64_t row_end) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = row_begin; r < row_end; ++r) {
      const float ref = vec_dot(GgmlType::Q8_0, c.weights.data() + r * c.w.row_bytes,
                                &c.xq[c.act * static_cast<size_t>(t)], c.w.cols);
      const float got = y[static_cast<size_t>(t * c.w.rows + r)];
      ASSERT_EQ(std::memcmp(&ref, &got, sizeof(float)), 0)
          << "rows " << c.w.rows << " cols " << c.w.cols << " tokens " << n_tokens << " token " << t
          << " row " << r << ": " << ref << " vs " << got;
    }
  }
}

TEST(Q8_0RowGroups, GroupsBitIdenticalToScalarReference) {
  if (!q8_0_row_groups_available()) {
    GTEST_SKIP() << "CPU without AVX-512 VNNI or V4_CPU_SIMD=avx2: the row-at-a-time kernels run";
  }
  std::mt19937 rng(41);
  for (int64_t cols : {32, 96, 4096}) {
    for (int64_t n_tokens : {1, 3, 4, 5, 8, 13}) {
      const Case c = make_case(32, cols, n_tokens, rng);
      std::vector<float> y(static_cast<size_t>(n_tokens * 32));
      matmul_q8_0_row_groups(c.w, c.xq.data(), n_tokens, y.data(), 32, 16, 32);
      expect_reference(c, y, n_tokens, 16, 32);
      matmul_q8_0_row_groups(c.w, c.xq.data(), n_tokens, y.data(), 32, 0, 16);
      expect_reference(c, y, n_tokens, 0, 32);
    }
  }
}

// Through matmul_rows, which takes the grouped kernel from kQ8_0GroupMinTokens tokens: any split
// of the rows among threads gives the reference result.
TEST(Q8_0RowGroups, MatmulRowsAnySplitBitIdenticalToScalarReference) {
  std::mt19937 rng(43);
  for (int64_t n_tokens : {kQ8_0GroupMinTokens - 1, kQ8_0GroupMinTokens, int64_t{17}}) {
    const int64_t rows = 53, cols = 256;
    const Case c = make_case(rows, cols, n_tokens, rng);
    std::vector<float> y(static_cast<size_t>(n_tokens * rows));
    matmul_rows(c.w, c.xq.data(), n_tokens, y.data(), rows, 0, 3);      // a few rows
    matmul_rows(c.w, c.xq.data(), n_tokens, y.data(), rows, 3, 37);     // two groups and a tail
    matmul_rows(c.w, c.xq.data(), n_tokens, y.data(), rows, 37, rows);  // one group
    expect_reference(c, y, n_tokens, 0, rows);
  }
}

}  // namespace
}  // namespace v4::kernels
