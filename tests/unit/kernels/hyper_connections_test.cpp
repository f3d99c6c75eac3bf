// HC split + Sinkhorn and the pre/post mixing against double-precision references written from
// spec §3.2–§3.3.
#include "kernels/cpu/hyper_connections.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace v4::kernels {
namespace {

struct Split {
  std::vector<double> pre, post, comb;
};

Split reference_split(const std::vector<float>& m, const float* scale,
                      const std::vector<float>& base, int n, int iters, double eps) {
  auto sigmoid = [](double x) { return 1 / (1 + std::exp(-x)); };
  Split s;
  for (int i = 0; i < n; ++i) {
    s.pre.push_back(sigmoid(double(m[i]) * scale[0] + base[i]) + eps);
    s.post.push_back(2 * sigmoid(double(m[n + i]) * scale[1] + base[n + i]));
  }
  std::vector<double> c(n * n);
  for (int a = 0; a < n; ++a) {  // row softmax (+eps)
    double mx = -INFINITY, sum = 0;
    for (int b = 0; b < n; ++b)
      mx = std::max(mx, double(m[2 * n + a * n + b]) * scale[2] + base[2 * n + a * n + b]);
    for (int b = 0; b < n; ++b)
      sum += std::exp(double(m[2 * n + a * n + b]) * scale[2] + base[2 * n + a * n + b] - mx);
    for (int b = 0; b < n; ++b)
      c[a * n + b] =
          std::exp(double(m[2 * n + a * n + b]) * scale[2] + base[2 * n + a * n + b] - mx) / sum +
          eps;
  }
  auto cols = [&] {
    for (int b = 0; b < n; ++b) {
      double sum = 0;
      for (int a = 0; a < n; ++a) sum += c[a * n + b];
      for (int a = 0; a < n; ++a) c[a * n + b] /= sum + eps;
    }
  };
  auto rows = [&] {
    for (int a = 0; a < n; ++a) {
      double sum = 0;
      for (int b = 0; b < n; ++b) sum += c[a * n + b];
      for (int b = 0; b < n; ++b) c[a * n + b] /= sum + eps;
    }
  };
  cols();
  for (int i = 1; i < iters; ++i) rows(), cols();
  s.comb = c;
  return s;
}

TEST(HyperConnections, SplitSinkhornMatchesDoubleReference) {
  std::mt19937 rng(6);
  std::normal_distribution<float> normal(0, 2);
  const int n = 4;
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> m(24), base(24);
    for (float& v : m) v = normal(rng);
    for (float& v : base) v = normal(rng) * 0.3f;
    const float scale[3] = {0.5f, 0.7f, 1.3f};
    std::vector<float> pre(4), post(4), comb(16);
    hc_split_sinkhorn(m.data(), scale, base.data(), n, 20, 1e-6f, pre.data(), post.data(),
                      comb.data());
    const Split ref = reference_split(m, scale, base, n, 20, 1e-6);
    // fp32 vs fp64 over 20 normalisation rounds: relative error a few float ulps per round.
    for (int i = 0; i < 4; ++i) {
      EXPECT_NEAR(pre[i], ref.pre[i], 1e-6);
      EXPECT_NEAR(post[i], ref.post[i], 2e-6);
    }
    for (int i = 0; i < 16; ++i) EXPECT_NEAR(comb[i], ref.comb[i], 2e-5) << i;
    // Sinkhorn ends on a column normalisation: columns sum to ~1, rows close to 1.
    for (int b = 0; b < 4; ++b) {
      double col = 0;
      for (int a = 0; a < 4; ++a) col += comb[a * 4 + b];
      EXPECT_NEAR(col, 1.0, 1e-4);
    }
  }
}

TEST(HyperConnections, PostMixesStreamsThroughCombAndGates) {
  const int64_t d = 3;
  const uint32_t n = 2;
  const float f[3] = {1, 2, 3};
  const float x[6] = {10, 20, 30, 40, 50, 60};
  const float post[2] = {0.5f, 2.0f};
  const float comb[4] = {0.25f, 0.75f, 0.5f, 0.5f};  // comb[a·n + b], a = source
  float out[6];
  hc_post(f, x, post, comb, n, d, out);
  for (int64_t i = 0; i < d; ++i) {
    EXPECT_FLOAT_EQ(out[i], 0.5f * f[i] + 0.25f * x[i] + 0.5f * x[d + i]);
    EXPECT_FLOAT_EQ(out[d + i], 2.0f * f[i] + 0.75f * x[i] + 0.5f * x[d + i]);
  }
  const float w[2] = {0.1f, 0.9f};
  float y[3];
  hc_weighted_sum(x, w, n, d, y);
  for (int64_t i = 0; i < d; ++i) EXPECT_FLOAT_EQ(y[i], 0.1f * x[i] + 0.9f * x[d + i]);
}

TEST(HyperConnections, HeadWeightsAreSigmoidPlusEps) {
  const float m[2] = {0.0f, 2.0f}, base[2] = {0.0f, -1.0f};
  float w[2];
  hc_head_weights(m, 0.5f, base, 2, 1e-6f, w);
  EXPECT_NEAR(w[0], 0.5 + 1e-6, 1e-7);
  EXPECT_NEAR(w[1], 1 / (1 + std::exp(0.0)) + 1e-6, 1e-7);
}

}  // namespace
}  // namespace v4::kernels
