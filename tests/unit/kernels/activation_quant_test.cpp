// kernels/cpu/activation_quant.cpp: Q8_0 and Q8_K activation rows as ggml's reference writes
// them (spec §6 Q8_0 and Q8_K). Bit-exactness of Q8_0 with gguf-py is tests/python.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "quant_test_inputs.h"

namespace v4::kernels {
namespace {

TEST(ActivationQuant, Q8KReconstructsWithinHalfAStepAndSumsItsGroups) {
  const std::vector<float> x = test::gaussian_row(8 * kQK_K, 3.0f, 21);
  std::vector<BlockQ8K> q(8);
  quantize_row_q8_k(x.data(), q.data(), static_cast<int64_t>(x.size()));
  for (size_t b = 0; b < q.size(); ++b) {
    float amax = 0;
    for (int j = 0; j < kQK_K; ++j) amax = std::fmax(amax, std::fabs(x[b * kQK_K + j]));
    // d = amax/127 kept in fp32 (not fp16): 2^-22 relative covers the rounding of −127/max and 1/·.
    EXPECT_NEAR(std::fabs(q[b].d), amax / 127, amax / 127 * 0x1p-22);
    int peak = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float xj = x[b * kQK_K + j];
      // Rounding to nearest: at most half a step, plus fp32 slack for x·(−127/max).
      EXPECT_LE(std::fabs(xj - q[b].d * q[b].qs[j]), 0.5f * std::fabs(q[b].d) * (1 + 0x1p-20f));
      peak = std::max(peak, std::abs(static_cast<int>(q[b].qs[j])));
    }
    EXPECT_EQ(peak, 127);  // the largest magnitude maps to exactly ±127
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += q[b].qs[16 * g + l];
      EXPECT_EQ(q[b].bsums[g], sum) << "block " << b << " group " << g;
    }
  }
}

TEST(ActivationQuant, Q8KMapsTheSignedMaximumToMinus127) {
  // ggml scales by −127/max (max = the signed value of largest magnitude), so d < 0 when that
  // value is positive and the codes flip sign: d·q still reconstructs x.
  std::vector<float> x(kQK_K, 0.0f);
  x[5] = 2.0f;
  x[6] = -1.0f;
  BlockQ8K q;
  quantize_row_q8_k(x.data(), &q, kQK_K);
  EXPECT_EQ(q.qs[5], -127);
  EXPECT_EQ(q.qs[6], 64);  // −127/2 · −1 = 63.5, a tie: nearest_int rounds half to even
  EXPECT_FLOAT_EQ(q.d, -2.0f / 127);
}

TEST(ActivationQuant, Q8KZeroBlockIsAllZero) {
  const std::vector<float> x(kQK_K, 0.0f);
  BlockQ8K q;
  std::memset(&q, 0x5A, sizeof(q));
  quantize_row_q8_k(x.data(), &q, kQK_K);
  EXPECT_EQ(q.d, 0.0f);
  for (int j = 0; j < kQK_K; ++j) ASSERT_EQ(q.qs[j], 0);
  for (int g = 0; g < 16; ++g) ASSERT_EQ(q.bsums[g], 0);
}

TEST(ActivationQuant, Q8_0RoundsTiesAwayFromZeroWithFp16Scale) {
  // amax = 127 makes d = 1 exactly, so x = k + 0.5 are ties: roundf sends them away from zero
  // (ggml's Q8_0 uses roundf, unlike the K-quants' nearest_int).
  float x[kQK8_0];
  for (int j = 0; j < kQK8_0; ++j) x[j] = static_cast<float>(j) - 15.5f;
  x[0] = 127.0f;
  BlockQ8_0 q;
  quantize_row_q8_0(x, &q, kQK8_0);
  EXPECT_EQ(fp16_to_fp32(q.d), 1.0f);
  EXPECT_EQ(q.qs[0], 127);
  EXPECT_EQ(q.qs[1], -15);  // −14.5 → −15
  EXPECT_EQ(q.qs[16], 1);   // 0.5 → 1
  EXPECT_EQ(q.qs[31], 16);  // 15.5 → 16
}

}  // namespace
}  // namespace v4::kernels
