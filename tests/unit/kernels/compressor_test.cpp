// The streaming compressors against the block formulas of spec §3.4.3 evaluated directly, in
// double, on a random token sequence.
#include "kernels/cpu/compressor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace v4::kernels {
namespace {

// The compressor's parameters as the test draws them.
struct CompressorWeights {
  uint32_t ratio = 0;
  uint32_t width = 0;
  std::vector<float> ape;
};

struct Tokens {
  std::vector<std::vector<float>> a, g;
};

Tokens random_tokens(int n, uint32_t width, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0, 1);
  Tokens t;
  for (int i = 0; i < n; ++i) {
    t.a.emplace_back(width), t.g.emplace_back(width);
    for (auto& v : t.a.back()) v = normal(rng);
    for (auto& v : t.g.back()) v = 2 * normal(rng);
  }
  return t;
}

CompressorWeights weights(uint32_t ratio, uint32_t head) {
  CompressorWeights w;
  w.ratio = ratio;
  w.width = ratio == 4 ? 2 * head : head;
  w.ape.resize(size_t{ratio} * w.width);
  for (size_t i = 0; i < w.ape.size(); ++i) w.ape[i] = 0.01f * static_cast<float>(i % 13);
  return w;
}

// c_i[d] = Σ_j softmax_j(score_j[d])·value_j[d] over the block's candidates.
std::vector<double> reference_block(const CompressorWeights& w, const Tokens& t, int i,
                                    uint32_t head) {
  std::vector<double> out(head);
  const int r = static_cast<int>(w.ratio);
  for (uint32_t d = 0; d < head; ++d) {
    std::vector<std::pair<double, double>> cand;  // (score, value)
    auto score = [&](int tok, uint32_t ch) {
      return double(t.g[tok][ch]) + w.ape[size_t(tok % r) * w.width + ch];
    };
    if (r == 4) {
      if (i > 0) {
        for (int tok = 4 * i - 4; tok < 4 * i; ++tok) cand.push_back({score(tok, d), t.a[tok][d]});
      }
      for (int tok = 4 * i; tok < 4 * i + 4; ++tok) {
        cand.push_back({score(tok, head + d), t.a[tok][head + d]});
      }
    } else {
      for (int tok = r * i; tok < r * i + r; ++tok) cand.push_back({score(tok, d), t.a[tok][d]});
    }
    double mx = -INFINITY, den = 0, num = 0;
    for (auto& [s, v] : cand) mx = std::max(mx, s);
    for (auto& [s, v] : cand) den += std::exp(s - mx), num += std::exp(s - mx) * v;
    out[d] = num / den;
  }
  return out;
}

void check(uint32_t ratio, uint32_t head, int n_tokens) {
  const CompressorWeights w = weights(ratio, head);
  const Tokens t = random_tokens(n_tokens, w.width, ratio);
  const uint32_t rows = ratio == 4 ? 8 : ratio;
  std::vector<float> values(size_t{rows} * w.width, 0.0f);
  std::vector<float> scores(values.size(), -std::numeric_limits<float>::infinity());
  CompressorCarry carry{values.data(), scores.data(), rows, w.width};
  std::vector<float> pooled(head);
  int emitted = 0;
  for (int pos = 0; pos < n_tokens; ++pos) {
    const bool done = compressor_push(carry, w.ratio, w.ape.data(), t.a[pos].data(),
                                      t.g[pos].data(), pos, pooled.data());
    ASSERT_EQ(done, (pos + 1) % static_cast<int>(ratio) == 0) << pos;
    if (!done) continue;
    const std::vector<double> ref = reference_block(w, t, emitted++, head);
    // float softmax over ≤128 candidates vs double: relative 1e-5 of the values' scale.
    for (uint32_t d = 0; d < head; ++d) ASSERT_NEAR(pooled[d], ref[d], 2e-5) << pos << ":" << d;
  }
  EXPECT_EQ(emitted, n_tokens / static_cast<int>(ratio));
}

TEST(Compressor, Ratio4OverlapsThePreviousBlock) { check(4, 16, 41); }
TEST(Compressor, Ratio128PoolsWholeBlocks) { check(128, 8, 300); }

}  // namespace
}  // namespace v4::kernels
