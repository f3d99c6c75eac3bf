// Every row-wise Backend op against its per-token kernel called directly (the reference a device
// backend's ops will be held to as well), on a backend with 1 and with 3 threads and on batches
// large enough to take the parallel path. Tolerance 0: an op may only distribute per-token work,
// never change a rounding, so any thread count and batch gives the reference's bits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "kernels/cpu/fp4.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/hadamard.h"
#include "kernels/cpu/hyper_connections.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/rope.h"
#include "model/backend/cpu_backend.h"

namespace v4 {
namespace {

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class BackendOpsTest : public ::testing::TestWithParam<unsigned> {
 protected:
  CpuBackend be{GetParam()};
  CpuBackend reference{1};  // only its matmul, to form the HC mixes the reference way
};

constexpr uint32_t kHc = 4;
// Large enough that every op takes its parallel path at 3 threads.
constexpr int64_t kEmbd = 1024, kTokens = 45;

TEST_P(BackendOpsTest, HyperConnectionOpsEqualThePerTokenKernels) {
  const int64_t flat = kHc * kEmbd, mixes = 2 * kHc + kHc * kHc;
  std::vector<float> fn_values = gaussian(static_cast<size_t>(flat * mixes), 1, 0.05f);
  const kernels::MatrixView fn{GgmlType::F32, reinterpret_cast<const uint8_t*>(fn_values.data()),
                               flat, mixes, static_cast<size_t>(flat) * sizeof(float)};
  const std::vector<float> scale{0.9f, 1.1f, 0.7f}, base = gaussian(mixes, 2, 0.3f);
  const HcMixing hc{&fn, scale.data(), base.data(), kHc, kEmbd, 20, 1e-6f, 1e-6f};
  const std::vector<float> x = gaussian(kTokens * flat, 3);

  std::vector<float> y(kTokens * kEmbd), post(kTokens * kHc), comb(kTokens * kHc * kHc);
  be.hc_pre(hc, x.data(), kTokens, y.data(), post.data(), comb.data());
  std::vector<float> normed(x.size()), m(kTokens * mixes), want_y(y.size()), want_post(post.size()),
      want_comb(comb.size()), pre(kHc);
  reference.rms_norm(x.data(), nullptr, flat, kTokens, hc.rms_eps, normed.data());
  reference.matmul(fn, normed.data(), kTokens, m.data());
  for (int64_t t = 0; t < kTokens; ++t) {
    kernels::hc_split_sinkhorn(&m[t * mixes], scale.data(), base.data(), kHc, 20, 1e-6f, pre.data(),
                               &want_post[t * kHc], &want_comb[t * kHc * kHc]);
    kernels::hc_weighted_sum(&x[t * flat], pre.data(), kHc, kEmbd, &want_y[t * kEmbd]);
  }
  EXPECT_TRUE(same_bits(y, want_y));
  EXPECT_TRUE(same_bits(post, want_post));
  EXPECT_TRUE(same_bits(comb, want_comb));

  std::vector<float> out(x.size()), want_out(x.size());
  be.hc_post(y.data(), nullptr, x.data(), post.data(), comb.data(), kTokens, kHc, kEmbd,
             out.data());
  for (int64_t t = 0; t < kTokens; ++t) {
    kernels::hc_post(&y[t * kEmbd], &x[t * flat], &post[t * kHc], &comb[t * kHc * kHc], kHc, kEmbd,
                     &want_out[t * flat]);
  }
  EXPECT_TRUE(same_bits(out, want_out));

  // With f_added the sub-layer output is y + f_added, each value summed as Backend::add sums it.
  const std::vector<float> more = gaussian(y.size(), 4);
  std::vector<float> sum = y, added(x.size()), want_added(x.size());
  be.add(more.data(), static_cast<int64_t>(sum.size()), sum.data());
  be.hc_post(sum.data(), nullptr, x.data(), post.data(), comb.data(), kTokens, kHc, kEmbd,
             want_added.data());
  be.hc_post(y.data(), more.data(), x.data(), post.data(), comb.data(), kTokens, kHc, kEmbd,
             added.data());
  EXPECT_TRUE(same_bits(added, want_added));
  EXPECT_FALSE(same_bits(added, out));

  // The head uses the first n_hc mixes of its own fn.
  const kernels::MatrixView head_fn{fn.type, fn.data, flat, kHc, fn.row_bytes};
  const HcMixing head{&head_fn, scale.data(), base.data(), kHc, kEmbd, 0, 1e-6f, 1e-6f};
  std::vector<float> z(kTokens * kEmbd), want_z(z.size()), hm(kTokens * kHc), w(kHc);
  be.hc_head(head, x.data(), kTokens, z.data());
  reference.matmul(head_fn, normed.data(), kTokens, hm.data());
  for (int64_t t = 0; t < kTokens; ++t) {
    kernels::hc_head_weights(&hm[t * kHc], scale[0], base.data(), kHc, 1e-6f, w.data());
    kernels::hc_weighted_sum(&x[t * flat], w.data(), kHc, kEmbd, &want_z[t * kEmbd]);
  }
  EXPECT_TRUE(same_bits(z, want_z));
}

TEST_P(BackendOpsTest, RowOpsEqualThePerRowKernels) {
  constexpr int64_t kHeads = 10, kHeadDim = 128, kRope = 32;
  std::vector<float> freqs(kRope / 2);
  for (size_t k = 0; k < freqs.size(); ++k) freqs[k] = std::pow(10000.0f, -2.0f * k / kRope);
  std::vector<uint64_t> positions(kTokens);
  for (int64_t t = 0; t < kTokens; ++t) positions[t] = static_cast<uint64_t>(t * 977 % 70000);
  const std::vector<float> x = gaussian(kTokens * kHeads * kHeadDim, 4, 3.0f);
  for (bool inverse : {false, true}) {
    std::vector<float> got = x, want = x;
    be.rope(got.data(), kTokens, kHeads, kHeadDim, kHeadDim - kRope, kRope, positions.data(),
            freqs.data(), inverse);
    for (int64_t i = 0; i < kTokens * kHeads; ++i) {
      kernels::rope_rotate(&want[i * kHeadDim + kHeadDim - kRope], freqs.data(), kRope / 2,
                           positions[i / kHeads], inverse);
    }
    EXPECT_TRUE(same_bits(got, want)) << "inverse " << inverse;
  }
  std::vector<float> got = x, want = x;
  be.fp8_round_trip(got.data(), kTokens * kHeads, kHeadDim, kHeadDim - kRope, 64);
  for (int64_t r = 0; r < kTokens * kHeads; ++r) {
    kernels::fp8_round_trip(&want[r * kHeadDim], kHeadDim - kRope, 64);
  }
  EXPECT_TRUE(same_bits(got, want));
  EXPECT_FALSE(same_bits(got, x));  // the round-trip did change values

  got = x;
  want = x;
  be.indexer_qat(got.data(), kTokens * kHeads, kHeadDim);
  for (int64_t r = 0; r < kTokens * kHeads; ++r) {
    kernels::hadamard_transform(&want[r * kHeadDim], kHeadDim);
    kernels::fp4_round_trip(&want[r * kHeadDim], kHeadDim, 32);
  }
  EXPECT_TRUE(same_bits(got, want));
}

TEST_P(BackendOpsTest, EmbedGatherSumAddAndScale) {
  constexpr int64_t kVocab = 50;
  const size_t row_bytes = static_cast<size_t>(*ggml_row_size(GgmlType::Q8_0, kEmbd));
  std::vector<uint8_t> table(row_bytes * kVocab);
  const std::vector<float> values = gaussian(kVocab * kEmbd, 5);
  for (int64_t v = 0; v < kVocab; ++v) {
    kernels::quantize_row(GgmlType::Q8_0, &values[v * kEmbd], &table[v * row_bytes], kEmbd);
  }
  const kernels::MatrixView view{GgmlType::Q8_0, table.data(), kEmbd, kVocab, row_bytes};
  std::vector<int32_t> tokens(kTokens);
  for (int64_t t = 0; t < kTokens; ++t) tokens[t] = static_cast<int32_t>((t * 13) % kVocab);
  std::vector<float> x(kTokens * kHc * kEmbd), want(x.size());
  be.embed(view, tokens.data(), kTokens, kHc, x.data());
  for (int64_t t = 0; t < kTokens; ++t) {
    for (uint32_t s = 0; s < kHc; ++s) {
      kernels::dequantize_row(GgmlType::Q8_0, &table[tokens[t] * row_bytes],
                              &want[(t * kHc + s) * kEmbd], kEmbd);
    }
  }
  EXPECT_TRUE(same_bits(x, want));

  std::vector<int64_t> rows{5, 0, 36, 5};
  std::vector<float> gathered(rows.size() * kEmbd);
  be.gather_rows(values.data(), kEmbd, rows.data(), 4, gathered.data());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(0, std::memcmp(&gathered[i * kEmbd], &values[rows[i] * kEmbd], kEmbd * 4));
  }
  // Strided copies: rows of kEmbd into rows of kEmbd + 2 (by index), then the two tail columns
  // back out (in order); the untouched destination values stay.
  std::vector<float> wide(rows.size() * (kEmbd + 2), -7.0f), tail(rows.size() * 2);
  be.copy_rows(values.data(), kEmbd, rows.data(), 4, kEmbd, wide.data(), kEmbd + 2);
  be.copy_rows(values.data() + 1, kEmbd, nullptr, 4, 2, wide.data() + kEmbd, kEmbd + 2);
  be.copy_rows(wide.data() + kEmbd, kEmbd + 2, nullptr, 4, 2, tail.data(), 2);
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(0, std::memcmp(&wide[i * (kEmbd + 2)], &values[rows[i] * kEmbd], kEmbd * 4));
    EXPECT_EQ(tail[2 * i], values[i * kEmbd + 1]);
    EXPECT_EQ(tail[2 * i + 1], values[i * kEmbd + 2]);
  }

  // Slots summed from zero in selection order, per element.
  constexpr uint32_t kK = 3;
  std::vector<int64_t> slot_rows(kTokens * kK);
  for (size_t i = 0; i < slot_rows.size(); ++i) slot_rows[i] = static_cast<int64_t>((i * 7) % 40);
  std::vector<float> sum(kTokens * kEmbd), want_sum(sum.size(), 0.0f);
  be.sum_slots(values.data(), slot_rows.data(), kTokens, kK, kEmbd, sum.data());
  for (int64_t t = 0; t < kTokens; ++t) {
    for (uint32_t s = 0; s < kK; ++s) {
      for (int64_t i = 0; i < kEmbd; ++i) {
        want_sum[t * kEmbd + i] += values[slot_rows[t * kK + s] * kEmbd + i];
      }
    }
  }
  EXPECT_TRUE(same_bits(sum, want_sum));

  std::vector<float> y = gaussian(kTokens * kEmbd, 6), want_y = y;
  be.add(sum.data(), kTokens * kEmbd, y.data());
  be.scale(y.data(), kTokens * kEmbd, 0.25f);
  for (size_t i = 0; i < want_y.size(); ++i) want_y[i] = (want_y[i] + sum[i]) * 0.25f;
  EXPECT_TRUE(same_bits(y, want_y));
}

INSTANTIATE_TEST_SUITE_P(Threads, BackendOpsTest, ::testing::Values(1u, 3u));

}  // namespace
}  // namespace v4
