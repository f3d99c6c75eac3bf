#include "kernels/cpu/fp8.h"

#include <algorithm>
#include <cmath>

namespace v4::kernels {

float pow2_ceil(float v) {
  int e = 0;
  const float m = std::frexp(v, &e);  // v = m·2^e, m in [0.5, 1)
  return std::ldexp(1.0f, m == 0.5f ? e - 1 : e);
}

float e4m3_round(float x) {
  const float a = std::min(std::fabs(x), 448.0f);
  if (a == 0.0f) return std::copysign(0.0f, x);
  int e = 0;
  std::frexp(a, &e);  // a in [2^(e-1), 2^e)
  // Three mantissa bits: the grid step is 2^(e-1-3); below the smallest normal 2^-6 the
  // subnormal step 2^-9 applies.
  const int exponent = std::max(e - 1, -6);
  const float step = std::ldexp(1.0f, exponent - 3);
  const float q = std::nearbyint(a / step);  // default rounding mode: ties to even
  return std::copysign(std::min(q * step, 448.0f), x);
}

void fp8_round_trip(float* x, int64_t n, int64_t block) {
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t b1 = std::min(n, b0 + block);
    float amax = 1e-4f;
    for (int64_t i = b0; i < b1; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float s = pow2_ceil(amax / 448.0f);
    for (int64_t i = b0; i < b1; ++i) {
      x[i] = s * e4m3_round(std::clamp(x[i] / s, -448.0f, 448.0f));
    }
  }
}

}  // namespace v4::kernels
