// CpuBackend's composite ops against the same arithmetic done op by op: the grouped expert FFN
// against one matmul per (expert, row) with the SwiGLU kernel in between, and the local expert
// dispatcher against a per-token sum in selection order. Tolerance 0: the grouped op must only
// change which weight blocks are shared, never a single rounding, and any thread count must give
// the same bits.
#include "model/backend/cpu_backend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/moe_routing.h"
#include "kernels/cpu/quant.h"
#include "model/v4/expert_dispatcher.h"

namespace v4 {
namespace {

constexpr int64_t kEmbd = 256, kFf = 64;
constexpr int32_t kExperts = 5;
constexpr float kLimit = 7.0f;

// A stack of kExperts matrices of rows × cols in `type`, quantized from seeded Gaussians.
struct Stack {
  std::vector<uint8_t> bytes;
  ExpertStack view;
};

Stack make_stack(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.5f);
  const size_t row_bytes = static_cast<size_t>(*ggml_row_size(type, static_cast<uint64_t>(cols)));
  Stack s;
  s.bytes.resize(row_bytes * static_cast<size_t>(rows * kExperts));
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows * kExperts; ++r) {
    for (float& v : row) v = dist(rng);
    kernels::quantize_row(type, row.data(), s.bytes.data() + static_cast<size_t>(r) * row_bytes,
                          cols);
  }
  s.view.first = {type, s.bytes.data(), cols, rows, row_bytes};
  s.view.stride = row_bytes * static_cast<size_t>(rows);
  return s;
}

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

class CpuBackendMoeTest : public ::testing::Test {
 protected:
  // Gate, up and down in three different formats, so each has its own activation quantization.
  Stack gate = make_stack(GgmlType::Q8_0, kFf, kEmbd, 1);
  Stack up = make_stack(GgmlType::F16, kFf, kEmbd, 2);
  Stack down = make_stack(GgmlType::Q8_0, kEmbd, kFf, 3);
  ExpertFfnWeights weights() const { return {gate.view, up.view, down.view, kLimit}; }

  // One expert on one row, op by op.
  std::vector<float> reference_row(CpuBackend& be, int32_t e, const float* x, float scale) const {
    std::vector<float> g(kFf), u(kFf), y(kEmbd);
    be.matmul(gate.view.matrix(e), x, 1, g.data());
    be.matmul(up.view.matrix(e), x, 1, u.data());
    kernels::swiglu_row(g.data(), u.data(), kFf, kLimit, scale);
    be.matmul(down.view.matrix(e), g.data(), 1, y.data());
    return y;
  }
};

TEST_F(CpuBackendMoeTest, GroupedExpertFfnEqualsOneMatmulPerRow) {
  // Experts of 0..9 rows, one empty in the middle.
  const std::vector<int64_t> offsets{0, 1, 7, 7, 16, 20};
  const uint32_t n_expert = 5;
  constexpr int64_t kRows = 20;
  const std::vector<float> x = gaussian(kRows * kEmbd, 11);
  const std::vector<float> scales = gaussian(kRows, 12, 0.3f);
  CpuBackend one(1);
  for (unsigned threads : {1u, 2u, 3u}) {
    CpuBackend be(threads);
    std::vector<float> y(kRows * kEmbd, -1.0f);
    be.grouped_expert_ffn(weights(), offsets.data(), n_expert, offsets[n_expert], x.data(), nullptr,
                          scales.data(), y.data());
    for (int32_t e = 0; e < static_cast<int32_t>(n_expert); ++e) {
      for (int64_t r = offsets[e]; r < offsets[e + 1]; ++r) {
        const std::vector<float> want = reference_row(one, e, &x[r * kEmbd], scales[r]);
        EXPECT_EQ(0, std::memcmp(want.data(), &y[r * kEmbd], kEmbd * sizeof(float)))
            << threads << " threads, row " << r << " expert " << e;
      }
    }
  }
}

TEST_F(CpuBackendMoeTest, NullRowScalesMeanOne) {
  const std::vector<float> x = gaussian(3 * kEmbd, 21);
  const std::vector<float> ones(3, 1.0f);
  const int64_t offsets[] = {0, 0, 0, 3};  // every row through expert 2
  CpuBackend be(2);
  std::vector<float> a(3 * kEmbd), b(3 * kEmbd);
  be.grouped_expert_ffn(weights(), offsets, 3, offsets[3], x.data(), nullptr, nullptr, a.data());
  be.grouped_expert_ffn(weights(), offsets, 3, offsets[3], x.data(), nullptr, ones.data(),
                        b.data());
  EXPECT_TRUE(a == b);
}

// The dispatcher's combine: Σ over slots in selection order of weight·expert(x), each token's sum
// the same whether it is dispatched alone or with others.
TEST_F(CpuBackendMoeTest, LocalDispatcherSumsEachTokensExpertsInSelectionOrder) {
  constexpr int64_t kTokens = 13;
  constexpr uint32_t kK = 3;
  const std::vector<float> x = gaussian(kTokens * kEmbd, 31);
  std::vector<int32_t> experts(kTokens * kK);
  std::vector<float> wts = gaussian(kTokens * kK, 32, 0.4f);
  std::mt19937 rng(33);
  for (int64_t t = 0; t < kTokens; ++t) {
    std::vector<int32_t> ids{0, 1, 2, 3, 4};
    std::shuffle(ids.begin(), ids.end(), rng);
    std::copy_n(ids.begin(), kK, &experts[t * kK]);
  }
  CpuBackend be(2), one(1);
  LocalExpertDispatcher dispatcher(be);
  std::vector<float> batched(kTokens * kEmbd);
  dispatcher.dispatch_combine(0, weights(),
                              {x.data(), experts.data(), wts.data(), kTokens, kK, kEmbd, 5},
                              batched.data(), [] {});
  for (int64_t t = 0; t < kTokens; ++t) {
    std::vector<float> want(kEmbd, 0.0f);
    for (uint32_t s = 0; s < kK; ++s) {
      const std::vector<float> y =
          reference_row(one, experts[t * kK + s], &x[t * kEmbd], wts[t * kK + s]);
      for (int64_t i = 0; i < kEmbd; ++i) want[i] += y[i];
    }
    EXPECT_EQ(0, std::memcmp(want.data(), &batched[t * kEmbd], kEmbd * sizeof(float))) << t;
    std::vector<float> alone(kEmbd);
    dispatcher.dispatch_combine(0, weights(),
                                {&x[t * kEmbd], &experts[t * kK], &wts[t * kK], 1, kK, kEmbd, 5},
                                alone.data(), [] {});
    EXPECT_EQ(0, std::memcmp(alone.data(), &batched[t * kEmbd], kEmbd * sizeof(float))) << t;
  }
}

TEST(CpuBackendRouting, RouteExpertsMatchesTheRowKernelPerToken) {
  constexpr uint32_t kN = 16, kK = 4;
  constexpr int64_t kTokens = 6;
  const std::vector<float> logits = gaussian(kTokens * kN, 41, 2.0f);
  const std::vector<float> bias = gaussian(kN, 42, 0.5f);
  ExpertRouting r;
  r.n_expert = kN;
  r.k = kK;
  r.weights_scale = 1.5f;
  r.bias = bias.data();
  const std::vector<int32_t> tokens{5, 1, 0, 3, 3, 2};
  CpuBackend be(2);
  std::vector<int32_t> experts(kTokens * kK);
  std::vector<float> wts(kTokens * kK);
  be.route_experts(r, logits.data(), tokens.data(), kTokens, experts.data(), wts.data());
  for (int64_t t = 0; t < kTokens; ++t) {
    // Highest biased score first, every chosen one above every other.
    float lowest_chosen = 1e30f;
    for (uint32_t s = 0; s < kK; ++s) {
      const int32_t e = experts[t * kK + s];
      const float score = kernels::sqrt_softplus(logits[t * kN + e]) + bias[e];
      if (s > 0) {
        const int32_t prev = experts[t * kK + s - 1];
        EXPECT_GE(kernels::sqrt_softplus(logits[t * kN + prev]) + bias[prev], score);
      }
      lowest_chosen = std::min(lowest_chosen, score);
    }
    for (uint32_t e = 0; e < kN; ++e) {
      if (std::find(&experts[t * kK], &experts[t * kK] + kK, static_cast<int32_t>(e)) !=
          &experts[t * kK] + kK)
        continue;
      EXPECT_LE(kernels::sqrt_softplus(logits[t * kN + e]) + bias[e], lowest_chosen);
    }
    float sum = 0.0f;
    for (uint32_t s = 0; s < kK; ++s) sum += wts[t * kK + s];
    EXPECT_NEAR(sum, 1.5f, 1e-5f);  // normalised, then scaled
  }
  // Hash routing takes the token's table row as it is.
  std::vector<int32_t> table(6 * kK);
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>((i * 7) % kN);
  r.bias = nullptr;
  r.hash_table = table.data();
  r.hash_width = kK;
  be.route_experts(r, logits.data(), tokens.data(), kTokens, experts.data(), wts.data());
  for (int64_t t = 0; t < kTokens; ++t) {
    for (uint32_t s = 0; s < kK; ++s) {
      EXPECT_EQ(experts[t * kK + s], table[static_cast<size_t>(tokens[t]) * kK + s]);
    }
  }
}

}  // namespace
}  // namespace v4

namespace v4 {
namespace {

TEST(CpuBackendMemory, TensorsViewBackendBuffersAndCopiesStayInRange) {
  CpuBackend be(1);
  std::unique_ptr<DeviceBuffer> buffer = be.allocate(4096);
  ASSERT_EQ(buffer->bytes(), 4096u);
  EXPECT_EQ(buffer->device(), DeviceKind::kCpu);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer->data()) % 64, 0u);
  // 3 rows of 8 floats at byte 128; Q8_0 rows of 64 values are 2 blocks of 34 bytes.
  const Tensor t = Tensor::contiguous(buffer.get(), 128, GgmlType::F32, {8, 3, 1, 1});
  EXPECT_EQ(t.nb[1], 32u);
  EXPECT_EQ(t.bytes(), 96u);
  EXPECT_EQ(Tensor::contiguous(buffer.get(), 0, GgmlType::Q8_0, {64, 2, 1, 1}).nb[1], 68u);
  const std::vector<float> in = gaussian(24, 51);
  ASSERT_TRUE(be.copy_to_device(in.data(), t, 0, 96));
  const Tensor second = t.rows(1, 2);
  EXPECT_EQ(second.data<float>(), t.data<float>() + 8);
  std::vector<float> out(16);
  ASSERT_TRUE(be.copy_to_host(second, 0, out.data(), 64));
  EXPECT_TRUE(std::equal(out.begin(), out.end(), in.begin() + 8));
  // Past the tensor's end, or a tensor past its buffer's end: an error, nothing copied.
  EXPECT_FALSE(be.copy_to_device(in.data(), t, 8, 96));
  EXPECT_FALSE(be.copy_to_host(t, 100, out.data(), 4));
  const Tensor outside = Tensor::contiguous(buffer.get(), 4090, GgmlType::F32, {4, 1, 1, 1});
  EXPECT_FALSE(be.copy_to_host(outside, 0, out.data(), 4));
  EXPECT_FALSE(be.copy_to_host(Tensor{}, 0, out.data(), 0));
}

}  // namespace
}  // namespace v4
