// RoPE with YaRN (spec §3.4.1): the correction range of the real config is low = 15, high = 25;
// frequencies match the spec formula computed in double; inverse rotation undoes rotation.
#include "model/v4/rope.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "model/v4/v4_config.h"

namespace v4 {
namespace {

TEST(Rope, YarnCorrectionRangeOfTheRealConfigIs15To25) {
  V4Config c;  // defaults are the real model (spec §1)
  const RopeParams p = rope_params_for_ratio(c, 4);
  EXPECT_TRUE(p.yarn);
  EXPECT_EQ(p.freq_base, 160000.0f);
  const YarnRange r = yarn_correction_range(p);
  EXPECT_EQ(r.low, 15.0f);
  EXPECT_EQ(r.high, 25.0f);
}

TEST(Rope, FrequenciesFollowTheSpecFormula) {
  V4Config c;
  const std::vector<float> yarn = rope_frequencies(rope_params_for_ratio(c, 128));
  const std::vector<float> plain = rope_frequencies(rope_params_for_ratio(c, 0));
  ASSERT_EQ(yarn.size(), 32u);
  for (int k = 0; k < 32; ++k) {
    const double w0 = std::pow(160000.0, -2.0 * k / 64);
    const double gamma = 1 - std::clamp((k - 15.0) / (25.0 - 15.0), 0.0, 1.0);
    const double want = w0 * (gamma + (1 - gamma) / 16);
    EXPECT_NEAR(yarn[k], want, want * 1e-6) << k;  // float storage of the frequency
    EXPECT_NEAR(plain[k], std::pow(10000.0, -2.0 * k / 64), plain[k] * 1e-6) << k;
  }
  EXPECT_FLOAT_EQ(yarn[10], static_cast<float>(std::pow(160000.0, -20.0 / 64)));       // kept
  EXPECT_FLOAT_EQ(yarn[30], static_cast<float>(std::pow(160000.0, -60.0 / 64) / 16));  // /16
}

TEST(Rope, RotatesInterleavedPairsAndInverts) {
  const std::vector<float> freqs = {1.0f, 0.5f};
  float x[4] = {1, 0, 0, 1};
  rope_rotate(x, freqs, 3, false);
  EXPECT_NEAR(x[0], std::cos(3.0), 1e-6);
  EXPECT_NEAR(x[1], std::sin(3.0), 1e-6);
  EXPECT_NEAR(x[2], -std::sin(1.5), 1e-6);
  EXPECT_NEAR(x[3], std::cos(1.5), 1e-6);
  rope_rotate(x, freqs, 3, true);
  EXPECT_NEAR(x[0], 1, 1e-6);
  EXPECT_NEAR(x[1], 0, 1e-6);
  EXPECT_NEAR(x[2], 0, 1e-6);
  EXPECT_NEAR(x[3], 1, 1e-6);
}

}  // namespace
}  // namespace v4
