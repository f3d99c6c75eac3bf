// FP4 E2M1 rounding and the indexer's block round-trip (spec §3.4.4) against a nearest-value
// search over the grid with ties to the even grid index.
#include "kernels/cpu/fp4.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace v4::kernels {
namespace {

constexpr double kGrid[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};

double reference_round(double x) {
  const double a = std::min(std::fabs(x), 6.0);
  int best = 0;
  for (int i = 1; i < 8; ++i) {
    const double d = std::fabs(kGrid[i] - a), db = std::fabs(kGrid[best] - a);
    if (d < db || (d == db && i % 2 == 0)) best = i;
  }
  return std::copysign(kGrid[best], x);
}

TEST(Fp4, GridAndTies) {
  for (double v : kGrid) EXPECT_EQ(e2m1_round(static_cast<float>(v)), v);
  // Midpoints: 0.25→0, 0.75→1, 1.25→1, 1.75→2, 2.5→2, 3.5→4, 5→4 (even grid index).
  const std::pair<float, float> ties[] = {{0.25f, 0}, {0.75f, 1}, {1.25f, 1}, {1.75f, 2},
                                          {2.5f, 2},  {3.5f, 4},  {5.0f, 4}};
  for (auto [x, want] : ties) {
    EXPECT_EQ(e2m1_round(x), want) << x;
    EXPECT_EQ(e2m1_round(-x), -want) << x;
  }
  EXPECT_EQ(e2m1_round(9.0f), 6.0f);
}

TEST(Fp4, RandomValuesMatchNearestSearch) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-7, 7);
  for (int i = 0; i < 20000; ++i) {
    const float x = u(rng);
    ASSERT_EQ(e2m1_round(x), reference_round(x)) << x;
  }
}

TEST(Fp4, RoundTripBlocksOf32) {
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> x(128), y;
  for (size_t i = 0; i < x.size(); ++i) x[i] = normal(rng) * (i < 32 ? 1e-30f : 1 + i / 8.0f);
  y = x;
  fp4_round_trip(y.data(), 128, 32);
  for (size_t b = 0; b < 4; ++b) {
    double amax = 6.0 * std::ldexp(1.0, -126);
    for (size_t i = 32 * b; i < 32 * b + 32; ++i) amax = std::max(amax, std::fabs(double(x[i])));
    const double s = std::pow(2.0, std::ceil(std::log2(amax / 6.0)));
    for (size_t i = 32 * b; i < 32 * b + 32; ++i) {
      EXPECT_EQ(y[i], static_cast<float>(s * reference_round(x[i] / s))) << i;
    }
  }
}

}  // namespace
}  // namespace v4::kernels
