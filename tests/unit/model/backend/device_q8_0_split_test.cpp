// Q8_0 weights in the device's split layout (Backend::split_q8_0_rows): the rewritten rows hold
// the GGUF blocks' quants, then their scales, as ggml's block struct defines them; rows that
// cannot be split stay as they are; and every product that reads split rows (the warp kernels,
// the tensor-core tiles, the shared-input and grouped launches, the expert FFN, the embedding)
// gives the bits it gives on the GGUF rows.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/cpu/quant_blocks.h"
#include "model/backend/device/device_ops_q8_0_split.h"
#include "tests/unit/model/backend/device_test_util.h"

namespace v4 {
namespace {

using testing_device::download;
using testing_device::quantized_weights;
using testing_device::randoms;
using testing_device::upload;

class SplitQ8_0 : public testing_device::OnEachDevice {
 protected:
  // Q8_0 rows × cols on the device, and their view; `split` rewrites them.
  struct Matrix {
    testing_device::OnDevice<uint8_t> bytes;
    kernels::MatrixView view;
  };
  Matrix on_device(const std::vector<uint8_t>& w, int64_t rows, int64_t cols, bool split) {
    Matrix m{upload(*be_, w), {}};
    m.view = {GgmlType::Q8_0, m.bytes.get(), cols, rows, *ggml_row_size(GgmlType::Q8_0, cols)};
    if (split) {
      EXPECT_TRUE(be_->split_q8_0_rows(m.view, rows));
    }
    return m;
  }
};

TEST_P(SplitQ8_0, ARowBecomesItsBlocksQuantsThenTheirScales) {
  const int64_t rows = 5, cols = 1024, blocks = cols / kernels::kQK8_0;
  const std::vector<uint8_t> w = quantized_weights(GgmlType::Q8_0, rows, cols, 3);
  Matrix m = on_device(w, rows, cols, true);
  EXPECT_TRUE(m.view.q8_0_split);
  const std::vector<uint8_t> got = download(*be_, m.bytes);
  ASSERT_EQ(got.size(), w.size()) << "the rows keep their size";
  const size_t row_bytes = m.view.row_bytes;
  for (int64_t r = 0; r < rows; ++r) {
    const auto* gguf = reinterpret_cast<const kernels::BlockQ8_0*>(w.data() + r * row_bytes);
    const uint8_t* row = got.data() + r * row_bytes;
    for (int64_t b = 0; b < blocks; ++b) {
      ASSERT_EQ(std::memcmp(row + b * kernels::kQK8_0, gguf[b].qs, kernels::kQK8_0), 0)
          << "row " << r << " block " << b << " quants";
      uint16_t d;
      std::memcpy(&d, row + blocks * kernels::kQK8_0 + 2 * b, 2);
      ASSERT_EQ(d, gguf[b].d) << "row " << r << " block " << b << " scale";
    }
  }
}

TEST_P(SplitQ8_0, RowsThatCannotBeSplitStayAsTheyAre) {
  // 64 values: 68-byte rows, not whole 16-byte pieces. A Q4_K matrix. A Q8_0 matrix at an address
  // off the 16-byte boundary. Each is refused and left byte for byte.
  const std::vector<uint8_t> narrow = quantized_weights(GgmlType::Q8_0, 3, 64, 5);
  Matrix m = on_device(narrow, 3, 64, false);
  EXPECT_FALSE(be_->split_q8_0_rows(m.view, 3));
  EXPECT_FALSE(m.view.q8_0_split);
  EXPECT_EQ(download(*be_, m.bytes), narrow);

  const std::vector<uint8_t> k4 = quantized_weights(GgmlType::Q4_K, 2, 256, 6);
  const auto dk = upload(*be_, k4);
  kernels::MatrixView kv{GgmlType::Q4_K, dk.get(), 256, 2, *ggml_row_size(GgmlType::Q4_K, 256)};
  EXPECT_FALSE(be_->split_q8_0_rows(kv, 2));
  EXPECT_EQ(download(*be_, dk), k4);

  std::vector<uint8_t> shifted(2 + 272, 0);
  const std::vector<uint8_t> one = quantized_weights(GgmlType::Q8_0, 1, 256, 7);
  std::memcpy(shifted.data() + 2, one.data(), one.size());
  const auto ds = upload(*be_, shifted);
  kernels::MatrixView sv{GgmlType::Q8_0, ds.get() + 2, 256, 1, 272};
  EXPECT_FALSE(be_->split_q8_0_rows(sv, 1));
  EXPECT_EQ(download(*be_, ds), shifted);

  // The CPU reads the GGUF layout alone.
  kernels::MatrixView host{GgmlType::Q8_0, one.data(), 256, 1, 272};
  EXPECT_FALSE(cpu_.split_q8_0_rows(host, 1));
  EXPECT_FALSE(host.q8_0_split);
}

TEST_P(SplitQ8_0, ProductsOfSplitRowsAreTheGgufRowsBits) {
  // 1024 values: one chunk of 32 blocks. 17408: two chunks (512 and 32 blocks), summed after.
  // 1, 3 and 17 tokens take the warp kernels, 40 the tensor-core tiles.
  for (int64_t cols : {int64_t{1024}, int64_t{17408}}) {
    const int64_t rows = 37;
    const std::vector<uint8_t> w = quantized_weights(GgmlType::Q8_0, rows, cols, 11);
    Matrix gguf = on_device(w, rows, cols, false), split = on_device(w, rows, cols, true);
    for (int64_t n : {1, 3, 17, 40}) {
      const auto dx = upload(*be_, randoms(n * cols, 12 + static_cast<uint32_t>(n)));
      auto want = testing_device::zeros_on<float>(*be_, n * rows);
      auto got = testing_device::zeros_on<float>(*be_, n * rows);
      be_->matmul(gguf.view, dx.get(), n, want.get());
      be_->matmul(split.view, dx.get(), n, got.get());
      const std::vector<float> expected = download(*be_, want);
      EXPECT_EQ(download(*be_, got), expected) << cols << " columns, " << n << " tokens";
      EXPECT_TRUE(std::any_of(expected.begin(), expected.end(), [](float v) { return v != 0; }));
    }
  }
}

TEST_P(SplitQ8_0, SharedInputAndGroupedProductsOfSplitRowsAreTheGgufRowsBits) {
  const int64_t cols = 512, n = 3;
  const std::vector<uint8_t> a = quantized_weights(GgmlType::Q8_0, 16, cols, 21);
  const std::vector<uint8_t> b = quantized_weights(GgmlType::Q8_0, 8, cols, 22);
  const auto dx = upload(*be_, randoms(4 * n * cols, 23));
  auto run = [&](bool split) {
    Matrix ma = on_device(a, 16, cols, split), mb = on_device(b, 8, cols, split);
    auto ya = testing_device::zeros_on<float>(*be_, n * 16);
    auto yb = testing_device::zeros_on<float>(*be_, n * 8);
    auto yg = testing_device::zeros_on<float>(*be_, n * 16);
    const MatmulTarget targets[] = {{ma.view, ya.get()}, {mb.view, yb.get()}};
    be_->matmul_shared(dx.get(), n, targets);
    // 4 groups of 4 rows, each reading its own slice of 512 values.
    be_->matmul_groups(ma.view, 4, dx.get(), n, yg.get());
    std::vector<float> out = download(*be_, ya);
    for (const auto* y : {&yb, &yg}) {
      const std::vector<float> more = download(*be_, *y);
      out.insert(out.end(), more.begin(), more.end());
    }
    return out;
  };
  EXPECT_EQ(run(true), run(false));
}

TEST_P(SplitQ8_0, ExpertFfnOfSplitRowsIsTheGgufRowsBits) {
  // 3 experts; 5 rows (the warp kernels) and 40 rows (past kMmaMinRowsPerExpert per expert: the
  // tensor-core tiles).
  const int64_t d = 256, ff = 512;
  const uint32_t n_expert = 3;
  const std::vector<uint8_t> gate = quantized_weights(GgmlType::Q8_0, n_expert * ff, d, 31);
  const std::vector<uint8_t> up = quantized_weights(GgmlType::Q8_0, n_expert * ff, d, 32);
  const std::vector<uint8_t> down = quantized_weights(GgmlType::Q8_0, n_expert * d, ff, 33);
  for (const std::vector<int64_t>& offsets :
       {std::vector<int64_t>{0, 2, 2, 5}, std::vector<int64_t>{0, 14, 30, 40}}) {
    const int64_t n_rows = offsets.back();
    const auto doff = upload(*be_, offsets);
    const auto dx = upload(*be_, randoms(n_rows * d, 34));
    const auto ds = upload(*be_, randoms(n_rows, 35));
    auto run = [&](bool split) {
      Matrix g = on_device(gate, n_expert * ff, d, split);
      Matrix u = on_device(up, n_expert * ff, d, split);
      Matrix dn = on_device(down, n_expert * d, ff, split);
      ExpertFfnWeights w;
      w.gate = {g.view, g.view.row_bytes * ff};
      w.up = {u.view, u.view.row_bytes * ff};
      w.down = {dn.view, dn.view.row_bytes * d};
      for (ExpertStack* s : {&w.gate, &w.up}) s->first.rows = ff;
      w.down.first.rows = d;
      w.swiglu_limit = 7.0f;
      auto y = testing_device::zeros_on<float>(*be_, n_rows * d);
      be_->grouped_expert_ffn(w, doff.get(), n_expert, n_rows, dx.get(), nullptr, ds.get(),
                              y.get());
      return download(*be_, y);
    };
    EXPECT_EQ(run(true), run(false)) << n_rows << " rows";
  }
}

TEST_P(SplitQ8_0, EmbeddingRowsOfASplitTableAreTheGgufTablesBits) {
  const int64_t cols = 256, rows = 6;
  const std::vector<uint8_t> table = quantized_weights(GgmlType::Q8_0, rows, cols, 41);
  const auto tokens = upload(*be_, std::vector<int32_t>{5, 0, 2, 5});
  auto run = [&](bool split) {
    Matrix m = on_device(table, rows, cols, split);
    auto x = testing_device::zeros_on<float>(*be_, 4 * cols);
    be_->embed(m.view, tokens.get(), 4, 1, x.get());
    return download(*be_, x);
  };
  EXPECT_EQ(run(true), run(false));
}

INSTANTIATE_TEST_SUITE_P(Backends, SplitQ8_0, testing_device::device_backend_names());

}  // namespace
}  // namespace v4
