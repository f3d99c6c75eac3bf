// The fast Walsh–Hadamard transform against the explicit Sylvester matrix in double precision.
#include "kernels/cpu/hadamard.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

namespace v4::kernels {
namespace {

TEST(Hadamard, MatchesSylvesterMatrix) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0, 1);
  for (int64_t n : {2, 8, 64, 128}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = normal(rng);
    std::vector<float> y = x;
    hadamard_transform(y.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < n; ++j) {
        acc += (std::popcount(static_cast<uint64_t>(i & j)) % 2 ? -1.0 : 1.0) * x[j];
      }
      acc /= std::sqrt(static_cast<double>(n));
      // log2(n) float butterflies: a few ulps of the row's magnitude.
      EXPECT_NEAR(y[i], acc, 1e-5 * std::sqrt(static_cast<double>(n))) << n << ":" << i;
    }
  }
}

TEST(Hadamard, IsItsOwnInverse) {
  std::vector<float> x(128);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) - 3.0f;
  std::vector<float> y = x;
  hadamard_transform(y.data(), 128);
  hadamard_transform(y.data(), 128);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i], 1e-5);  // float rounding only
}

}  // namespace
}  // namespace v4::kernels
