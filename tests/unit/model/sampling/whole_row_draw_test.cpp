// The whole-row draw against two references written here: the exact definition (sort every
// token, walk the fixed-point weights; the draw must find the same token without the sort), and
// textbook nucleus sampling in double (softmax, sort, walk; the token the sampler drew before it
// stopped sorting), which it must agree with except within ~1e-12 of a boundary.
#include "kernels/cpu/whole_row_draw.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/draw_weight.h"
#include "model/sampling/sampling.h"

namespace v4 {
namespace {

using kernels::draw_whole_row;
using kernels::WholeRowDraw;
using kernels::WholeRowDrawOptions;

// Every orderable token in rank order (logit descending, lower id first).
std::vector<int32_t> ranked(const std::vector<float>& logits) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!std::isnan(logits[i])) ids.push_back(static_cast<int32_t>(i));
  }
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)];
  });
  return ids;
}

// The definition: sorted, fixed-point weights, min-p, top-p, then the walk.
int32_t sort_and_walk(const std::vector<float>& logits, const WholeRowDrawOptions& o,
                      uint64_t bits53) {
  const std::vector<int32_t> ids = ranked(logits);
  const float max = logits[static_cast<size_t>(ids[0])];
  const int bits = kernels::draw_weight_bits(static_cast<int64_t>(logits.size()));
  const kernels::DrawWeightScale scale{std::ldexp(1.0, bits), kernels::draw_weight_cutoff(bits)};
  std::vector<uint64_t> w;
  uint64_t row = 0;
  size_t keep = 0;
  for (int32_t id : ids) {
    const float x = kernels::draw_scaled_logit(logits[static_cast<size_t>(id)], max, o.temperature);
    w.push_back(kernels::draw_weight(x, scale));
    row += w.back();
    if (o.min_p <= 0.0f || x >= std::log(o.min_p)) keep = w.size();
  }
  if (o.top_p < 1.0f) {
    const auto reach =
        std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(static_cast<double>(o.top_p) * row)));
    uint64_t acc = 0;
    for (size_t i = 0; i < keep; ++i) {
      if ((acc += w[i]) >= reach) {
        keep = i + 1;
        break;
      }
    }
  }
  const uint64_t kept =
      std::accumulate(w.begin(), w.begin() + static_cast<ptrdiff_t>(keep), uint64_t{0});
  const uint64_t x = kernels::draw_threshold(bits53, kept);
  uint64_t acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    if ((acc += w[i]) > x) return ids[i];
  }
  return -1;
}

// Textbook sampling in double: softmax(l/T) over the sorted row, min-p, top-p, then u·kept.
int32_t textbook(const std::vector<float>& logits, const WholeRowDrawOptions& o, double u) {
  const std::vector<int32_t> ids = ranked(logits);
  const double max = logits[static_cast<size_t>(ids[0])];
  std::vector<double> p;
  double sum = 0;
  for (int32_t id : ids) {
    p.push_back(std::exp((logits[static_cast<size_t>(id)] - max) / o.temperature));
    sum += p.back();
  }
  size_t keep = p.size();
  for (size_t i = 0; i < p.size(); ++i) {
    p[i] /= sum;
    if (p[i] < o.min_p * p[0]) keep = std::min(keep, i);
  }
  if (o.top_p < 1.0f) {
    double acc = 0;
    size_t n = 0;
    while (n < keep && acc < o.top_p) acc += p[n++];
    keep = n;
  }
  double at = u * std::accumulate(p.begin(), p.begin() + static_cast<ptrdiff_t>(keep), 0.0);
  for (size_t i = 0; i < keep; ++i) {
    if ((at -= p[i]) < 0) return ids[i];
  }
  return ids[keep - 1];
}

struct RowKind {
  const char* name;
  size_t n;
  float spread;  // logits uniform on a grid in [-spread, spread]
  float grid;    // 0: continuous
};

std::vector<float> make_row(const RowKind& kind, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-kind.spread, kind.spread);
  std::vector<float> row(kind.n);
  for (float& v : row) {
    v = u(rng);
    if (kind.grid > 0) v = std::round(v / kind.grid) * kind.grid;  // ties
  }
  return row;
}

const RowKind kRows[] = {
    {"flat", 5000, 2.0f, 0.0f}, {"peaked", 5000, 40.0f, 0.0f}, {"ties", 3000, 3.0f, 0.25f},
    {"short", 7, 1.0f, 0.5f},   {"one", 1, 1.0f, 0.0f},        {"wide ties", 2000, 60.0f, 5.0f},
};

const WholeRowDrawOptions kOptions[] = {
    {1.0f, 1.0f, 0.0f},   {0.7f, 0.9f, 0.0f},  {1.3f, 1.0f, 0.05f},  {0.2f, 0.5f, 0.01f},
    {2.0f, 0.999f, 0.0f}, {1.0f, 1e-6f, 0.0f}, {0.05f, 0.95f, 0.0f},
};

TEST(WholeRowDraw, FindsTheTokenThatSortingAndWalkingFinds) {
  std::mt19937 rng(3);
  std::mt19937_64 bits(5);
  for (const RowKind& kind : kRows) {
    for (const WholeRowDrawOptions& o : kOptions) {
      for (int trial = 0; trial < 12; ++trial) {
        std::vector<float> row = make_row(kind, rng);
        if (trial == 1 && kind.n > 2) row[kind.n / 2] = NAN;
        if (trial == 2 && kind.n > 1) row[0] = -INFINITY;
        for (uint64_t b :
             {uint64_t{0}, (uint64_t{1} << 53) - 1, bits() >> 11, bits() >> 11, bits() >> 11}) {
          ASSERT_EQ(draw_whole_row(row, o, b), sort_and_walk(row, o, b))
              << kind.name << " T " << o.temperature << " top_p " << o.top_p << " min_p " << o.min_p
              << " trial " << trial << " bits " << b;
        }
      }
    }
  }
}

TEST(WholeRowDraw, DrawsWhatTextbookSamplingDraws) {
  std::mt19937 rng(7);
  std::mt19937_64 bits(9);
  int draws = 0, differ = 0;
  for (const RowKind& kind : kRows) {
    for (const WholeRowDrawOptions& o : kOptions) {
      for (int trial = 0; trial < 40; ++trial) {
        const std::vector<float> row = make_row(kind, rng);
        const uint64_t b = bits() >> 11;
        ++draws;
        differ += draw_whole_row(row, o, b) != textbook(row, o, static_cast<double>(b) * 0x1p-53);
      }
    }
  }
  // A draw differs only where u lands within about 2^-45 of a boundary or on a token whose
  // probability rounds to zero: over these few thousand draws, never.
  EXPECT_EQ(differ, 0) << "of " << draws;
}

TEST(WholeRowDraw, FrequenciesFollowTheNucleusDistribution) {
  // Six tokens; top-p 0.8 keeps the best three or four. Chi-square of 20,000 seeded draws
  // against the textbook probabilities; above 25 (5 degrees of freedom at most) has
  // probability < 1e-3 for a correct sampler.
  const std::vector<float> logits{1.0f, 2.5f, 0.2f, 2.0f, -1.0f, 1.4f};
  for (const WholeRowDrawOptions& o :
       {WholeRowDrawOptions{1.0f, 1.0f, 0.0f}, WholeRowDrawOptions{1.0f, 0.8f, 0.0f},
        WholeRowDrawOptions{0.5f, 1.0f, 0.1f}}) {
    std::vector<double> expect(logits.size(), 0.0);
    constexpr int kDraws = 20000;
    for (int i = 0; i < 4096; ++i) {
      expect[static_cast<size_t>(textbook(logits, o, (i + 0.5) / 4096.0))] += kDraws / 4096.0;
    }
    std::vector<double> seen(logits.size(), 0.0);
    Sampler sampler({.temperature = o.temperature, .top_p = o.top_p, .min_p = o.min_p, .seed = 1});
    for (int i = 0; i < kDraws; ++i) seen[static_cast<size_t>(sampler.sample(logits))] += 1;
    double chi2 = 0;
    for (size_t t = 0; t < logits.size(); ++t) {
      if (expect[t] == 0) {
        EXPECT_EQ(seen[t], 0) << "token " << t << " is outside the nucleus";
        continue;
      }
      chi2 += (seen[t] - expect[t]) * (seen[t] - expect[t]) / expect[t];
    }
    EXPECT_LT(chi2, 25.0) << "T " << o.temperature << " top_p " << o.top_p;
  }
}

// At every boundary of the cumulative mass: the mass through token j still gives token j + 1,
// one below it gives token j.
TEST(WholeRowDraw, CumulativeMassBoundariesFallOnTheRightToken) {
  std::mt19937 rng(13);
  for (const RowKind& kind : kRows) {
    const std::vector<float> row = make_row(kind, rng);
    const WholeRowDrawOptions o{0.8f, 1.0f, 0.0f};
    WholeRowDraw draw;
    draw.weigh(row, o);
    const std::vector<int32_t> ids = ranked(row);
    const float max = row[static_cast<size_t>(ids[0])];
    const int bits = kernels::draw_weight_bits(static_cast<int64_t>(row.size()));
    uint64_t through = 0;
    std::vector<std::pair<uint64_t, int32_t>> ends;  // (mass through the token, the token)
    for (int32_t id : ids) {
      const uint64_t w = kernels::draw_weight(
          kernels::draw_scaled_logit(row[static_cast<size_t>(id)], max, o.temperature),
          {std::ldexp(1.0, bits), kernels::draw_weight_cutoff(bits)});
      if (w == 0) continue;
      ends.emplace_back(through += w, id);
    }
    ASSERT_EQ(draw.kept_mass(), through) << kind.name;
    for (size_t j = 0; j < ends.size(); ++j) {
      EXPECT_EQ(draw.token_passing(ends[j].first - 1), ends[j].second) << kind.name << " " << j;
      if (j + 1 < ends.size()) {
        EXPECT_EQ(draw.token_passing(ends[j].first), ends[j + 1].second) << kind.name << " " << j;
      }
    }
  }
}

// Tied tokens weigh exactly the same, so top-p's target can equal a cumulative mass: top-p 0.5
// over two equal tokens keeps the first alone (its mass reaches half), as textbook sampling does.
TEST(WholeRowDraw, TopPThatReachesAPrefixExactlyStopsThere) {
  std::mt19937_64 bits(17);
  for (int i = 0; i < 200; ++i) {
    const uint64_t b = bits() >> 11;
    EXPECT_EQ(draw_whole_row(std::vector<float>{1.0f, 1.0f}, {1.0f, 0.5f, 0.0f}, b), 0);
    const int32_t t =
        draw_whole_row(std::vector<float>{2.0f, 2.0f, 2.0f, 2.0f}, {1.0f, 0.75f, 0.0f}, b);
    EXPECT_LT(t, 3);
    EXPECT_EQ(t, textbook({2.0f, 2.0f, 2.0f, 2.0f}, {1.0f, 0.75f, 0.0f}, b * 0x1p-53));
  }
}

TEST(WholeRowDraw, RowsWithoutAnOrderableFiniteBestToken) {
  EXPECT_EQ(draw_whole_row(std::vector<float>{NAN, NAN}, {}, 0), 0);
  EXPECT_EQ(draw_whole_row(std::vector<float>{1.0f, INFINITY, 2.0f}, {}, 12345), 1);
  // min-p 1 keeps exactly the tokens tied with the best: both are drawn.
  std::vector<int> seen(3, 0);
  for (uint64_t b = 0; b < 64; ++b) {
    ++seen[static_cast<size_t>(
        draw_whole_row(std::vector<float>{2.0f, 2.0f, 1.0f}, {1.0f, 1.0f, 1.0f}, b << 47))];
  }
  EXPECT_EQ(seen[0], 32);
  EXPECT_EQ(seen[1], 32);
  // top-p at or below 0 keeps the best token alone.
  EXPECT_EQ(draw_whole_row(std::vector<float>{1.0f, 3.0f, 2.0f}, {1.0f, -0.5f, 0.0f}, 999), 1);
  EXPECT_EQ(draw_whole_row(std::vector<float>{1.0f, 3.0f, 2.0f}, {1.0f, 0.0f, 0.0f}, 999), 1);
  // min-p above 1 keeps nothing but the best token.
  EXPECT_EQ(draw_whole_row(std::vector<float>{1.0f, 3.0f, 2.0f}, {1.0f, 1.0f, 2.0f}, 999), 1);
}

}  // namespace
}  // namespace v4
