// The device backends' matrix products against CpuBackend for every weight format the models
// ship, the embedding lookup, and the grouped expert FFN, plus batch invariance: a token's output
// is bit-identical alone and in a batch; and prefill's tensor-core products against the warp
// kernels, bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <random>
#include <tuple>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_tables.h"
#include "kernels/device/quant_units_i8.h"
#include "model/backend/cpu_backend.h"
#include "model/backend/device/device_ops_matmul.h"
#include "model/backend/device/emulated_backend.h"
#include "tests/unit/model/backend/device_test_util.h"

namespace v4 {
namespace {

using testing_device::download;
using testing_device::OnDevice;
using testing_device::quantized_weights;
using testing_device::randoms;
using testing_device::upload;

const GgmlType kTypes[] = {GgmlType::F32,   GgmlType::F16,     GgmlType::BF16,   GgmlType::Q8_0,
                           GgmlType::MXFP4, GgmlType::Q2_K,    GgmlType::Q4_K,   GgmlType::Q5_K,
                           GgmlType::Q6_K,  GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ1_S,
                           GgmlType::IQ1_M};

class DeviceMatmul : public ::testing::TestWithParam<std::tuple<std::string, GgmlType>> {
 protected:
  void SetUp() override {
    std::string why;
    be_ = testing_device::make_device_backend(std::get<0>(GetParam()), &why);
    if (!be_) GTEST_SKIP() << why;
  }
  std::unique_ptr<Backend> be_;
  CpuBackend cpu_{2};
};

// The sum over blocks is ordered differently from the CPU's (per lane, then across lanes), and
// the CPU's float rows accumulate in double: relative to the sum of |products| the difference
// stays near float epsilon times the block count; 2e-5 of that scale catches any wrong code,
// scale or table entry (those move outputs by whole products).
void expect_close(const std::vector<float>& got, const std::vector<float>& want, float scale) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 2e-5f * scale + 1e-6f) << "output " << i;
  }
}

TEST_P(DeviceMatmul, MatchesTheCpuForEveryTokenCountAndStride) {
  const GgmlType type = std::get<1>(GetParam());
  const int64_t cols = 512, rows = 37, x_stride = cols + 3, y_stride = rows + 2;
  const std::vector<uint8_t> w = quantized_weights(type, rows, cols, 7);
  const auto dw = upload(*be_, w);
  for (int64_t n : {1, 3, 17, 40}) {  // 40: the tensor-core tiles for quantized types
    const std::vector<float> x = randoms(n * x_stride, 11 + static_cast<uint32_t>(n));
    std::vector<float> want(n * y_stride, 0.0f);
    kernels::MatrixView hv{type, w.data(), cols, rows, *ggml_row_size(type, cols)};
    cpu_.matmul(hv, x.data(), x_stride, n, want.data(), y_stride);
    const auto dx = upload(*be_, x);
    auto dy = testing_device::zeros_on<float>(*be_, want.size());
    kernels::MatrixView dv = hv;
    dv.data = dw.get();
    be_->matmul(dv, dx.get(), x_stride, n, dy.get(), y_stride);
    float scale = 0;
    for (float v : x) scale = std::max(scale, std::fabs(v));
    expect_close(download(*be_, dy), want, scale * cols * 0.5f);
  }
}

TEST_P(DeviceMatmul, ATokensOutputDoesNotDependOnItsBatch) {
  const GgmlType type = std::get<1>(GetParam());
  const int64_t cols = 256, rows = 19, n = 9;
  const auto dw = upload(*be_, quantized_weights(type, rows, cols, 3));
  const std::vector<float> x = randoms(n * cols, 5);
  kernels::MatrixView v{type, dw.get(), cols, rows, *ggml_row_size(type, cols)};
  const auto dx = upload(*be_, x);
  auto all = testing_device::zeros_on<float>(*be_, n * rows);
  be_->matmul(v, dx.get(), n, all.get());
  const std::vector<float> batched = download(*be_, all);
  for (int64_t t : {0, 4, 8}) {
    auto one = testing_device::zeros_on<float>(*be_, rows);
    be_->matmul(v, dx.get() + t * cols, 1, one.get());
    const std::vector<float> alone = download(*be_, one);
    EXPECT_TRUE(std::equal(alone.begin(), alone.end(), batched.begin() + t * rows)) << t;
  }
}

// Backend::matmul_split (the measuring aid of device_matmul_bench's InvarianceCost): with the
// forward's own split it is the same product bit for bit; with others the same sums in other
// chunks, within float rounding of the sum (expect_close's bound); the CPU has no such variant.
TEST_P(DeviceMatmul, SplitVariantSumsTheSameProductsInOtherChunks) {
  const GgmlType type = std::get<1>(GetParam());
  const int64_t rows = 5, n = 2;
  const int64_t own = device::chunk_units(type);
  // Three of the forward's chunks per row (values of float weights, else 32-value units).
  const int64_t cols = 3 * own * (device::is_float_weight(type) ? 1 : 32);
  const auto dw = upload(*be_, quantized_weights(type, rows, cols, 13));
  const std::vector<float> x = randoms(n * cols, 17);
  kernels::MatrixView v{type, dw.get(), cols, rows, *ggml_row_size(type, cols)};
  const auto dx = upload(*be_, x);
  auto y = testing_device::zeros_on<float>(*be_, n * rows);
  be_->matmul(v, dx.get(), n, y.get());
  const std::vector<float> want = download(*be_, y);
  float scale = 0;
  for (float value : x) scale = std::max(scale, std::fabs(value));
  for (int64_t chunk : {own, int64_t{32}, 3 * own}) {
    auto split = testing_device::zeros_on<float>(*be_, n * rows);
    ASSERT_TRUE(be_->matmul_split(v, dx.get(), cols, n, split.get(), rows, chunk));
    const std::vector<float> got = download(*be_, split);
    if (chunk == own) {
      EXPECT_EQ(got, want) << "the forward's own split";
    } else {
      expect_close(got, want, scale * cols * 0.5f);
      // The inputs are fixed: some output's last bits show that the sums were regrouped.
      if (chunk == 32) {
        EXPECT_NE(got, want) << "a split of 32 units summed as the forward's";
      }
    }
  }
  EXPECT_FALSE(cpu_.matmul_split(v, dx.get(), cols, n, y.get(), rows, own));
}

std::string name(const ::testing::TestParamInfo<DeviceMatmul::ParamType>& info) {
  return std::get<0>(info.param) + "_" + std::string(ggml_type_name(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceMatmul,
                         ::testing::Combine(testing_device::device_backend_names(),
                                            ::testing::ValuesIn(kTypes)),
                         name);

// --- Products of several parts in one launch (RowParts): Backend::matmul_groups and
// Backend::matmul_shared against the matmuls of their parts, one by one, on the same backend
// (Backend's own loop), bit for bit. The kernels launched are counted on the emulated device.

// Kernels the backend launched so far, where it can tell (the emulated device).
std::optional<uint64_t> launches(Backend& be) {
  if (auto* emulated = dynamic_cast<device::EmulatedDeviceBackend*>(&be)) {
    return emulated->exec().launches();
  }
  return std::nullopt;
}

TEST_P(DeviceMatmul, GroupsAreTheirGroupsMatmulsBitForBit) {
  const GgmlType type = std::get<1>(GetParam());
  const int64_t cols = 256;
  // 3 groups of 37 rows (tensor-core tiles would span groups: the warp kernel runs), and 10 of
  // 16 (more groups than one launch takes; tiles align).
  for (auto [groups, rows] : {std::pair<int64_t, int64_t>{3, 37}, {10, 16}}) {
    const auto dw = upload(*be_, quantized_weights(type, groups * rows, cols, 41));
    const kernels::MatrixView v{type, dw.get(), cols, groups * rows, *ggml_row_size(type, cols)};
    for (int64_t n : {1, 3, 40}) {
      const auto dx = upload(*be_, randoms(n * groups * cols, 43 + static_cast<uint32_t>(n)));
      auto fused = testing_device::zeros_on<float>(*be_, n * groups * rows);
      auto each = testing_device::zeros_on<float>(*be_, n * groups * rows);
      const std::optional<uint64_t> before = launches(*be_);
      be_->matmul_groups(v, groups, dx.get(), n, fused.get());
      if (before) {
        // One quantization (none for float weights) and a product per kMaxRowParts groups.
        const uint64_t want = (device::is_float_weight(type) ? 0 : 1) +
                              (groups + device::kMaxRowParts - 1) / device::kMaxRowParts;
        EXPECT_EQ(*launches(*be_) - *before, want) << groups << " groups, " << n << " tokens";
      }
      be_->Backend::matmul_groups(v, groups, dx.get(), n, each.get());
      const std::vector<float> got = download(*be_, fused);
      EXPECT_EQ(got, download(*be_, each)) << groups << " groups, " << n << " tokens";
      EXPECT_TRUE(std::any_of(got.begin(), got.end(), [](float y) { return y != 0.0f; }));
    }
  }
}

TEST_P(DeviceMatmul, SharedInputProductsAreEachMatmulBitForBit) {
  const GgmlType type = std::get<1>(GetParam());
  const int64_t cols = 256;
  // Runs of one type: 2 of `type`, 1 of Q8_0, then 10 of `type` with an empty one among them
  // (9 parts: two launches); rows not multiples of a tensor-core tile in the first run.
  std::vector<std::pair<GgmlType, int64_t>> shapes = {{type, 21}, {type, 16}, {GgmlType::Q8_0, 5}};
  for (int i = 0; i < 10; ++i) shapes.push_back({type, i == 4 ? 0 : 16 + i});
  std::vector<testing_device::OnDevice<uint8_t>> weights;
  std::vector<MatmulTarget> targets;
  std::vector<testing_device::OnDevice<float>> fused;
  for (int64_t n : {1, 3, 40}) {
    weights.clear();
    targets.clear();
    fused.clear();
    for (size_t i = 0; i < shapes.size(); ++i) {
      const auto [t, rows] = shapes[i];
      weights.push_back(upload(*be_, quantized_weights(t, rows, cols, 50 + i)));
      fused.push_back(testing_device::zeros_on<float>(*be_, std::max<int64_t>(n * rows, 1)));
      targets.push_back(
          {{t, weights.back().get(), cols, rows, *ggml_row_size(t, cols)}, fused.back().get()});
    }
    const auto dx = upload(*be_, randoms(n * cols, 60 + static_cast<uint32_t>(n)));
    const std::optional<uint64_t> before = launches(*be_);
    be_->matmul_shared(dx.get(), n, targets);
    if (before && type != GgmlType::Q8_0) {
      // Four products (the last run in two), and x quantized for each run whose format differs
      // from the one before: only the Q8_0 run's for float weights, and only the first run's
      // where the type takes Q8_0's split rows (MXFP4).
      const device::ActivationFormat::Kind kind = device::activation_format(type, cols).kind;
      const uint64_t quantizations =
          kind == device::ActivationFormat::kFloat || kind == device::ActivationFormat::kSplitQ8_0
              ? 1
              : 3;
      EXPECT_EQ(*launches(*be_) - *before, 4 + quantizations) << n << " tokens";
    }
    for (size_t i = 0; i < targets.size(); ++i) {
      const MatmulTarget& target = targets[i];
      auto alone = testing_device::zeros_on<float>(*be_, std::max<int64_t>(n * target.w.rows, 1));
      be_->matmul(target.w, dx.get(), n, alone.get());
      EXPECT_EQ(download(*be_, fused[i]), download(*be_, alone))
          << "target " << i << ", " << n << " tokens";
    }
  }
}

// norm_matmul_shared norms the rows in place in the launch that quantizes them for the first
// quantized product (float weights read the rows as the norm leaves them): bit for bit the
// RMSNorm op and then matmul_shared, the rows left normed, one launch fewer.
TEST_P(DeviceMatmul, NormedSharedInputProductsAreTheNormThenTheProducts) {
  const GgmlType type = std::get<1>(GetParam());
  const int64_t cols = 256;
  const std::vector<std::pair<GgmlType, int64_t>> shapes = {{type, 21}, {GgmlType::Q8_0, 5}};
  const auto norm = upload(*be_, randoms(cols, 70, 0.5f));
  std::vector<testing_device::OnDevice<uint8_t>> weights;
  for (size_t i = 0; i < shapes.size(); ++i)
    weights.push_back(
        upload(*be_, quantized_weights(shapes[i].first, shapes[i].second, cols, 71 + i)));
  for (int64_t n : {1, 3, 40}) {
    std::vector<testing_device::OnDevice<float>> outputs;
    std::vector<MatmulTarget> fused, each;
    for (size_t i = 0; i < shapes.size(); ++i) {
      const auto [t, rows] = shapes[i];
      const kernels::MatrixView w{t, weights[i].get(), cols, rows, *ggml_row_size(t, cols)};
      outputs.push_back(testing_device::zeros_on<float>(*be_, n * rows));
      fused.push_back({w, outputs.back().get()});
      outputs.push_back(testing_device::zeros_on<float>(*be_, n * rows));
      each.push_back({w, outputs.back().get()});
    }
    const std::vector<float> x = randoms(n * cols, 72 + static_cast<uint32_t>(n), 3.0f);
    auto x_fused = upload(*be_, x), x_each = upload(*be_, x);
    const std::optional<uint64_t> before = launches(*be_);
    be_->norm_matmul_shared(x_fused.get(), norm.get(), cols, 1e-6f, n, fused);
    const std::optional<uint64_t> middle = launches(*be_);
    be_->rms_norm(x_each.get(), norm.get(), cols, n, 1e-6f, x_each.get());
    be_->matmul_shared(x_each.get(), n, each);
    if (before) {
      EXPECT_EQ(*middle - *before + 1, *launches(*be_) - *middle) << n << " tokens";
    }
    const std::vector<float> normed = download(*be_, x_fused);
    EXPECT_EQ(std::memcmp(normed.data(), download(*be_, x_each).data(), normed.size() * 4), 0);
    EXPECT_NE(normed, x);
    for (size_t i = 0; i < shapes.size(); ++i) {
      const std::vector<float> got = download(*be_, outputs[2 * i]);
      EXPECT_EQ(std::memcmp(got.data(), download(*be_, outputs[2 * i + 1]).data(), got.size() * 4),
                0)
          << "target " << i << ", " << n << " tokens";
    }
  }
}

class DeviceExperts : public testing_device::OnEachDevice {};

TEST_P(DeviceExperts, EmbeddingRowsAreTheCpusBitForBit) {
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0}) {
    const int64_t cols = 64, rows = 10;
    const std::vector<uint8_t> table = quantized_weights(type, rows, cols, 9);
    const std::vector<int32_t> tokens = {3, 0, 9, 3};
    kernels::MatrixView hv{type, table.data(), cols, rows, *ggml_row_size(type, cols)};
    std::vector<float> want(tokens.size() * cols * 2);
    cpu_.embed(hv, tokens.data(), 4, 2, want.data());
    const auto dt = upload(*be_, table);
    const auto dtok = upload(*be_, tokens);
    auto dx = testing_device::zeros_on<float>(*be_, want.size());
    kernels::MatrixView dv = hv;
    dv.data = dt.get();
    be_->embed(dv, dtok.get(), 4, 2, dx.get());
    EXPECT_EQ(download(*be_, dx), want) << ggml_type_name(type);
  }
}

TEST_P(DeviceExperts, GroupedExpertFfnMatchesTheCpu) {
  // 4 experts (one empty) of 256 → 256 → 256, rows grouped by expert as group_by_expert makes them.
  const int64_t d = 256, ff = 256;  // K-format rows need whole 256-value blocks
  const uint32_t n_expert = 4;
  for (GgmlType type : {GgmlType::F32, GgmlType::Q8_0, GgmlType::IQ2_XXS, GgmlType::Q2_K}) {
    const std::vector<uint8_t> gate = quantized_weights(type, n_expert * ff, d, 1);
    const std::vector<uint8_t> up = quantized_weights(type, n_expert * ff, d, 2);
    const GgmlType down_type = type == GgmlType::IQ2_XXS ? GgmlType::Q2_K : type;
    const std::vector<uint8_t> down = quantized_weights(down_type, n_expert * d, ff, 3);
    const std::vector<int64_t> offsets = {0, 3, 3, 4, 7};
    const std::vector<float> x = randoms(7 * d, 4), scales = randoms(7, 5);
    auto weights = [&](const uint8_t* g, const uint8_t* u, const uint8_t* dn) {
      ExpertFfnWeights w;
      const size_t gb = *ggml_row_size(type, d), db = *ggml_row_size(down_type, ff);
      w.gate = {{type, g, d, ff, gb}, gb * ff};
      w.up = {{type, u, d, ff, gb}, gb * ff};
      w.down = {{down_type, dn, ff, d, db}, db * d};
      w.swiglu_limit = 7.0f;
      return w;
    };
    std::vector<float> want(7 * d);
    cpu_.grouped_expert_ffn(weights(gate.data(), up.data(), down.data()), offsets.data(), n_expert,
                            offsets[n_expert], x.data(), nullptr, scales.data(), want.data());
    const auto dg = upload(*be_, gate), du = upload(*be_, up), dd = upload(*be_, down);
    const auto doff = upload(*be_, offsets);
    const auto dx = upload(*be_, x), ds = upload(*be_, scales);
    auto dy = testing_device::zeros_on<float>(*be_, want.size());
    be_->grouped_expert_ffn(weights(dg.get(), du.get(), dd.get()), doff.get(), n_expert,
                            offsets[n_expert], dx.get(), nullptr, ds.get(), dy.get());
    const std::vector<float> got = download(*be_, dy);
    float scale = 0;
    for (float v : want) scale = std::max(scale, std::fabs(v));
    // Two chained products: the hidden activations are re-quantized, so a last-place difference
    // in a gate output can move one Q8 code; 1e-3 of the output range bounds that.
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-3f * scale) << ggml_type_name(type) << " output " << i;
    }

    // x_rows: each row reads its token's row of x, gathered as the rows are quantized (float
    // weights: gathered first), bit for bit gather_rows and then the FFN, on each backend.
    const std::vector<float> tokens_x = randoms(3 * d, 6);
    const std::vector<int64_t> row_token = {2, 0, 1, 2, 2, 0, 1};
    std::vector<float> gathered(7 * d), cpu_gathered(7 * d), cpu_mapped(7 * d);
    cpu_.gather_rows(tokens_x.data(), d, row_token.data(), 7, gathered.data());
    const ExpertFfnWeights host_w = weights(gate.data(), up.data(), down.data());
    cpu_.grouped_expert_ffn(host_w, offsets.data(), n_expert, 7, gathered.data(), nullptr,
                            scales.data(), cpu_gathered.data());
    cpu_.grouped_expert_ffn(host_w, offsets.data(), n_expert, 7, tokens_x.data(), row_token.data(),
                            scales.data(), cpu_mapped.data());
    EXPECT_EQ(cpu_mapped, cpu_gathered) << ggml_type_name(type);
    const ExpertFfnWeights dev_w = weights(dg.get(), du.get(), dd.get());
    const auto dtx = upload(*be_, tokens_x);
    const auto drows = upload(*be_, row_token);
    auto dgathered = testing_device::zeros_on<float>(*be_, 7 * d);
    auto dy_gathered = testing_device::zeros_on<float>(*be_, 7 * d);
    auto dy_mapped = testing_device::zeros_on<float>(*be_, 7 * d);
    be_->gather_rows(dtx.get(), d, drows.get(), 7, dgathered.get());
    be_->grouped_expert_ffn(dev_w, doff.get(), n_expert, 7, dgathered.get(), nullptr, ds.get(),
                            dy_gathered.get());
    be_->grouped_expert_ffn(dev_w, doff.get(), n_expert, 7, dtx.get(), drows.get(), ds.get(),
                            dy_mapped.get());
    const std::vector<float> mapped = download(*be_, dy_mapped);
    EXPECT_EQ(std::memcmp(mapped.data(), download(*be_, dy_gathered).data(), 7 * d * sizeof(float)),
              0)
        << ggml_type_name(type);
    EXPECT_NE(mapped, got) << ggml_type_name(type);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceExperts, testing_device::device_backend_names());

// --- Prefill's tensor-core products (device_ops_matmul_mma.h) against the warp kernels that
// decode uses, on the same backend kind: bit for bit, for every weight type with int8 units, at
// shapes that leave ragged tiles, lanes with fewer units than others, empty lanes in a row's
// last chunk, and experts with no rows, one row, and more than one tile of rows. Equal bits are
// what lets the engine pick either kernel by batch size and stay batch-invariant. A unit's
// integer form is checked on its own against the lane loops' value.

const GgmlType kInt8Types[] = {
    GgmlType::Q8_0, GgmlType::MXFP4,   GgmlType::Q2_K,   GgmlType::Q4_K,  GgmlType::Q5_K,
    GgmlType::Q6_K, GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ1_S, GgmlType::IQ1_M};

// A device backend of the test's kind, with the tensor cores on or off.
std::unique_ptr<Backend> device_backend(const std::string& name, bool tensor_cores,
                                        std::string* why) {
  device::DeviceOpOptions ops;
  ops.tensor_cores = tensor_cores;
  return testing_device::make_device_backend(name, why, ops);
}

class TensorCores : public ::testing::TestWithParam<std::tuple<std::string, GgmlType>> {
 protected:
  void SetUp() override {
    std::string why;
    mma_ = device_backend(std::get<0>(GetParam()), true, &why);
    if (!mma_) GTEST_SKIP() << why;
    warp_ = device_backend(std::get<0>(GetParam()), false, &why);
    ASSERT_TRUE(warp_) << why;
  }
  GgmlType type() const { return std::get<1>(GetParam()); }

  // y = W·x on `be` (n tokens of cols values, x_stride and y_stride apart).
  std::vector<float> product(Backend& be, const std::vector<uint8_t>& w, int64_t rows, int64_t cols,
                             const std::vector<float>& x, int64_t x_stride, int64_t n,
                             int64_t y_stride) {
    const auto dw = upload(be, w);
    const auto dx = upload(be, x);
    auto dy = testing_device::zeros_on<float>(be, n * y_stride);
    kernels::MatrixView v{type(), dw.get(), cols, rows, *ggml_row_size(type(), cols)};
    be.matmul(v, dx.get(), x_stride, n, dy.get(), y_stride);
    return download(be, dy);
  }

  std::unique_ptr<Backend> mma_, warp_;
};

// The int8 form of a unit and its finish give what the lane loops' unit functions give.
TEST_P(TensorCores, AUnitsIntegerFormFinishesToTheLaneLoopsValue) {
  if (std::get<0>(GetParam()) != "emulated") GTEST_SKIP() << "host arithmetic, checked once";
  const GgmlType t = type();
  const int64_t cols = 512, units = device::row_units(t, cols);
  const std::vector<uint8_t> w = quantized_weights(t, 1, cols, 21);
  const std::vector<float> x = randoms(cols, 22);
  const device::ActivationFormat f = device::activation_format(t, cols);
  std::vector<uint8_t> a(f.row_bytes + 16);
  for (int64_t u = 0; u < f.units; ++u) device::quantize_unit(f, x.data(), a.data(), u);
  const kernels::QuantTables tables{kernels::iq2xxs_grid, kernels::iq2xs_grid, kernels::iq1s_grid};
  device::dispatch_weight_type(t, "test", [&](auto tag) {
    constexpr GgmlType T = decltype(tag)::value;
    if constexpr (kernels::has_int8_units(T)) {
      for (int64_t u = 0; u < units; ++u) {
        int8_t wq[32];
        kernels::unit_weights_i8<T>(w.data(), u, tables, wq);
        const int8_t* aq = kernels::unit_activation_i8<T>(a.data(), u);
        int32_t isums[2] = {0, 0};
        for (int l = 0; l < 32; ++l) {
          isums[kernels::unit_sums(T) == 2 ? l / 16 : 0] += wq[l] * aq[l];
        }
        const float got = kernels::unit_finish<T>(w.data(), a.data(), units, u, isums);
        float want = 0.0f;
        device::lane_dot_tile<T, 1>(u, u + 1, units, w.data(), a.data(), 0, 1, 0, tables, &want);
        ASSERT_EQ(got, want) << "unit " << u;
      }
    }
  });
}

TEST_P(TensorCores, DenseProductsAreTheWarpKernelsBits) {
  // 37 rows and 45 tokens: ragged tiles both ways. 72 units: lanes 0-7 take three, the others
  // two. 520 units: two chunks, the second of 8 units (lanes 8-31 empty).
  kernels::HostExec exec;
  const device::DeviceScratch<kernels::HostExec> defaults(exec);
  ASSERT_TRUE(device::use_mma(defaults, type(), 45))
      << "45 tokens must take the tensor cores, or this test compares a kernel with itself";
  for (int64_t cols : {int64_t{72 * 32}, int64_t{520 * 32}}) {
    const int64_t rows = 37, n = 45, x_stride = cols + 5, y_stride = rows + 3;
    const std::vector<uint8_t> w = quantized_weights(type(), rows, cols, 31);
    const std::vector<float> x = randoms(n * x_stride, 32);
    const std::vector<float> got = product(*mma_, w, rows, cols, x, x_stride, n, y_stride);
    const std::vector<float> want = product(*warp_, w, rows, cols, x, x_stride, n, y_stride);
    EXPECT_EQ(got, want) << cols << " columns";
  }
}

TEST_P(TensorCores, ExpertProductsAreTheWarpKernelsBits) {
  // 6 experts: empty, 1 row, 17 rows (two tiles), empty, 40 rows, 6 rows; 64 rows in all, past
  // the average of kMmaMinRowsPerExpert rows per expert from which the tensor cores take over.
  const int64_t d = 512, ff = 256;
  const uint32_t n_expert = 6;
  const std::vector<int64_t> offsets = {0, 0, 1, 18, 18, 58, 64};
  const int64_t n_rows = offsets.back();
  ASSERT_GE(n_rows, device::kMmaMinRowsPerExpert * n_expert);
  const GgmlType t = type();
  const std::vector<uint8_t> gate = quantized_weights(t, n_expert * ff, d, 1);
  const std::vector<uint8_t> up = quantized_weights(t, n_expert * ff, d, 2);
  const std::vector<uint8_t> down = quantized_weights(t, n_expert * d, ff, 3);
  const std::vector<float> x = randoms(n_rows * d, 4), scales = randoms(n_rows, 5);
  auto run = [&](Backend& be) {
    const auto dg = upload(be, gate), du = upload(be, up), dd = upload(be, down);
    const auto doff = upload(be, offsets);
    const auto dx = upload(be, x), ds = upload(be, scales);
    auto dy = testing_device::zeros_on<float>(be, n_rows * d);
    ExpertFfnWeights w;
    const size_t gb = *ggml_row_size(t, d), db = *ggml_row_size(t, ff);
    w.gate = {{t, dg.get(), d, ff, gb}, gb * ff};
    w.up = {{t, du.get(), d, ff, gb}, gb * ff};
    w.down = {{t, dd.get(), ff, d, db}, db * d};
    w.swiglu_limit = 7.0f;
    be.grouped_expert_ffn(w, doff.get(), n_expert, n_rows, dx.get(), nullptr, ds.get(), dy.get());
    return download(be, dy);
  };
  const std::vector<float> got = run(*mma_);
  EXPECT_EQ(got, run(*warp_));
  EXPECT_TRUE(std::any_of(got.begin(), got.end(), [](float v) { return v != 0.0f; }));
}

std::string tensor_core_name(const ::testing::TestParamInfo<TensorCores::ParamType>& info) {
  return std::get<0>(info.param) + "_" + std::string(ggml_type_name(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(Backends, TensorCores,
                         ::testing::Combine(testing_device::device_backend_names(),
                                            ::testing::ValuesIn(kInt8Types)),
                         tensor_core_name);

}  // namespace
}  // namespace v4
