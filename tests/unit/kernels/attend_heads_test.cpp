// Sparse attention of a token's heads: the SIMD tiers against the scalar reference bit for bit,
// and the reference against attention computed in double precision (the oracle: softmax with a
// sink over scaled dot products, then the weighted sum of the rows).
#include "kernels/cpu/attend_heads.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/attend_heads_simd.h"
#include "kernels/cpu/float_dot_lanes.h"
#include "kernels/cpu/vec_dot_avx2.h"
#include "kernels/cpu/vec_dot_avx512.h"

namespace v4::kernels {
namespace {

// One token's inputs: rows in their own buffers (the pages are scattered), queries and sinks.
struct Inputs {
  std::vector<std::vector<float>> row_data;
  std::vector<const float*> rows;
  std::vector<float> q, sinks;
  AttentionHeads heads() const {
    return {rows.data(), rows.size(),  static_cast<int64_t>(q.size() / sinks.size()),
            q.data(),    sinks.data(), static_cast<int64_t>(sinks.size())};
  }
};

Inputs random_inputs(int64_t hd, int64_t heads, size_t n_rows, float magnitude, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Inputs in;
  in.row_data.resize(n_rows);
  for (auto& r : in.row_data) {
    r.resize(static_cast<size_t>(hd));
    for (float& v : r) v = normal(rng);
  }
  for (auto& r : in.row_data) in.rows.push_back(r.data());
  in.q.resize(static_cast<size_t>(hd * heads));
  for (float& v : in.q) v = normal(rng) * magnitude;
  in.sinks.resize(static_cast<size_t>(heads));
  for (float& v : in.sinks) v = normal(rng) * 2.0f;
  return in;
}

using Tier = void (*)(const AttentionHeads&, float*, float*);

void expect_tier_matches_reference(Tier tier, const char* name) {
  int cases = 0;
  for (int64_t hd : {32, 64, 128, 512}) {
    for (int64_t heads : {1, 2, 3, 4, 5, 9}) {
      for (size_t n_rows : {size_t{0}, size_t{1}, size_t{7}, size_t{130}}) {
        for (float magnitude : {0.01f, 1.0f, 30.0f}) {
          const Inputs in = random_inputs(hd, heads, n_rows, magnitude, ++cases);
          const size_t out_size = static_cast<size_t>(hd * heads);
          std::vector<float> want(out_size), got(out_size, -1.0f);
          std::vector<float> scratch(static_cast<size_t>(heads) * n_rows + 1);
          attend_heads_reference(in.heads(), scratch.data(), want.data());
          tier(in.heads(), scratch.data(), got.data());
          ASSERT_EQ(std::memcmp(want.data(), got.data(), out_size * sizeof(float)), 0)
              << name << " hd " << hd << " heads " << heads << " rows " << n_rows << " magnitude "
              << magnitude;
        }
      }
    }
  }
}

TEST(AttendHeads, Avx512BitIdenticalToReference) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "CPU without AVX-512 (or V4_CPU_SIMD=avx2)";
  expect_tier_matches_reference(attend_heads_avx512, "avx512");
}

TEST(AttendHeads, Avx2BitIdenticalToReference) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "CPU without AVX2";
  expect_tier_matches_reference(attend_heads_avx2, "avx2");
}

TEST(AttendHeads, DispatchBitIdenticalToReferenceForEveryShape) {
  // Head sizes that are not whole 32-lane chunks take the reference itself.
  for (int64_t hd : {16, 48, 64}) {
    const Inputs in = random_inputs(hd, 3, 20, 1.0f, static_cast<uint32_t>(hd));
    std::vector<float> want(static_cast<size_t>(hd * 3)), got(want.size());
    std::vector<float> scratch(60);
    attend_heads_reference(in.heads(), scratch.data(), want.data());
    attend_heads(in.heads(), scratch.data(), got.data());
    EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0) << hd;
  }
}

TEST(AttendHeads, ReferenceAgreesWithDoublePrecisionAttention) {
  const int64_t hd = 128, heads = 4;
  const Inputs in = random_inputs(hd, heads, 200, 0.3f, 5);
  std::vector<float> got(static_cast<size_t>(hd * heads)), scratch(800);
  attend_heads_reference(in.heads(), scratch.data(), got.data());
  for (int64_t h = 0; h < heads; ++h) {
    std::vector<double> s(in.rows.size());
    double mx = in.sinks[h];
    for (size_t j = 0; j < s.size(); ++j) {
      double dot = 0;
      for (int64_t d = 0; d < hd; ++d) dot += double(in.q[h * hd + d]) * in.rows[j][d];
      s[j] = dot / std::sqrt(double(hd));
      mx = std::max(mx, s[j]);
    }
    double den = std::exp(in.sinks[h] - mx);
    for (double& v : s) den += (v = std::exp(v - mx));
    for (int64_t d = 0; d < hd; ++d) {
      double want = 0;
      for (size_t j = 0; j < s.size(); ++j) want += s[j] * in.rows[j][d];
      want /= den;
      // Float rounding of 128-term dots, 200 softmax terms and a 200-term sum: a few ulp of
      // the largest terms, far below 1e-5 for outputs of magnitude ~0.1.
      EXPECT_NEAR(got[static_cast<size_t>(h * hd + d)], want, 1e-5) << h << " " << d;
    }
  }
}

TEST(FloatDot, LaneOrderIsTheDocumentedTree) {
  // Values whose sum depends on the order: 1e8 in lane 0 cancels in lane 16, and the small
  // terms survive only if they are added after the cancellation, as the tree does.
  std::vector<float> a(64, 0.0f), b(64, 1.0f);
  a[0] = 1e8f, a[16] = -1e8f, a[32] = 1.0f, a[1] = 0.5f;
  // lane 0: 1e8 + 1 = 1e8 (rounded); lane 16: -1e8; tree: (1e8 + -1e8) + ... + 0.5 = 0.5.
  EXPECT_EQ(float_dot(a.data(), b.data(), 64), 0.5f);
}

}  // namespace
}  // namespace v4::kernels
