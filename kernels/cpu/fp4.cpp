#include "kernels/cpu/fp4.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/fp8.h"
#include "kernels/cpu/hadamard.h"

namespace v4::kernels {

float e2m1_round(float x) {
  const float a = std::fabs(x);
  int best = 7;
  for (int i = 0; i < 7; ++i) {
    const float mid = 0.5f * (kE2m1Grid[i] + kE2m1Grid[i + 1]);  // exact: grid values are dyadic
    if (a < mid || (a == mid && i % 2 == 0)) {
      best = i;
      break;
    }
  }
  return std::copysign(kE2m1Grid[best], x);
}

void fp4_round_trip(float* x, int64_t n, int64_t block) {
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t b1 = std::min(n, b0 + block);
    float amax = 6.0f * 0x1p-126f;
    for (int64_t i = b0; i < b1; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float s = pow2_ceil(amax / 6.0f);
    for (int64_t i = b0; i < b1; ++i) x[i] = s * e2m1_round(std::clamp(x[i] / s, -6.0f, 6.0f));
  }
}

void indexer_qat_transform(float* row, int64_t dim) {
  hadamard_transform(row, dim);
  fp4_round_trip(row, dim, 32);
}

}  // namespace v4::kernels
