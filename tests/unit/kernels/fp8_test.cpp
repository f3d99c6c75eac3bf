// FP8 E4M3fn rounding and the KV round-trip against references written from the spec (§3.4.2):
// the full E4M3fn grid is enumerated from its bit layout and the nearest value found by search.
#include "kernels/cpu/fp8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace v4::kernels {
namespace {

// Every finite non-negative E4M3fn value with its code (exponent bias 7, 3 mantissa bits,
// exponent 0 subnormal, code 0x7F is NaN).
std::vector<std::pair<double, int>> e4m3_grid() {
  std::vector<std::pair<double, int>> grid;
  for (int code = 0; code < 0x7F; ++code) {
    const int e = code >> 3, m = code & 7;
    const double v =
        e == 0 ? m / 8.0 * std::ldexp(1.0, -6) : (1 + m / 8.0) * std::ldexp(1.0, e - 7);
    grid.push_back({v, code});
  }
  return grid;
}

// Nearest grid value, ties to the even code (even mantissa), saturating at 448.
double reference_round(double x) {
  static const auto grid = e4m3_grid();
  const double a = std::min(std::fabs(x), 448.0);
  double best = 0;
  double best_dist = INFINITY;
  for (const auto& [v, code] : grid) {
    const double d = std::fabs(v - a);
    if (d < best_dist || (d == best_dist && code % 2 == 0)) {
      best = v, best_dist = d;
    }
  }
  return std::copysign(best, x);
}

TEST(Fp8, GridValuesRoundTripExactly) {
  for (const auto& [v, code] : e4m3_grid()) {
    EXPECT_EQ(e4m3_round(static_cast<float>(v)), v) << code;
    EXPECT_EQ(e4m3_round(static_cast<float>(-v)), -v) << code;
  }
}

TEST(Fp8, MidpointsTieToEvenIncludingSubnormals) {
  const auto grid = e4m3_grid();
  for (size_t i = 0; i + 1 < grid.size(); ++i) {
    const double mid = 0.5 * (grid[i].first + grid[i + 1].first);
    const double even = grid[i].second % 2 == 0 ? grid[i].first : grid[i + 1].first;
    EXPECT_EQ(e4m3_round(static_cast<float>(mid)), even) << "between codes " << grid[i].second;
  }
  // The smallest subnormal is 2^-9; half of it ties to zero (even), just above rounds up.
  EXPECT_EQ(e4m3_round(0x1p-10f), 0.0f);
  EXPECT_EQ(e4m3_round(0x1.0001p-10f), 0x1p-9f);
}

TEST(Fp8, RandomValuesMatchNearestSearchAndSaturate) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> exponent(-12, 9.5);
  for (int i = 0; i < 20000; ++i) {
    const float x = static_cast<float>(std::pow(2.0, exponent(rng)) * (rng() % 2 ? 1 : -1));
    ASSERT_EQ(e4m3_round(x), reference_round(x)) << x;
  }
  EXPECT_EQ(e4m3_round(1000.0f), 448.0f);
  EXPECT_EQ(e4m3_round(-464.0f), -448.0f);
}

TEST(Fp8, RoundTripUsesPowerOfTwoBlockScales) {
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0, 3);
  std::vector<float> x(192);  // three blocks of 64 with different ranges
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = normal(rng) * (i < 64 ? 1e-3f : i < 128 ? 1.0f : 50.0f);
  x[5] = 0.0f;
  std::vector<float> y = x;
  fp8_round_trip(y.data(), static_cast<int64_t>(y.size()), 64);
  for (size_t b = 0; b < 3; ++b) {
    double amax = 1e-4;
    for (size_t i = 64 * b; i < 64 * b + 64; ++i) amax = std::max(amax, std::fabs(double(x[i])));
    const double s = std::pow(2.0, std::ceil(std::log2(amax / 448.0)));
    for (size_t i = 64 * b; i < 64 * b + 64; ++i) {
      EXPECT_EQ(y[i], s * reference_round(x[i] / s)) << i;
    }
  }
  EXPECT_EQ(pow2_ceil(1.0f), 1.0f);
  EXPECT_EQ(pow2_ceil(1.5f), 2.0f);
  EXPECT_EQ(pow2_ceil(0x1p-20f), 0x1p-20f);
}

}  // namespace
}  // namespace v4::kernels
