// Walsh–Hadamard transform in natural (Sylvester) order, scaled by 1/sqrt(n): the rotation the
// lightning indexer applies before its FP4 simulation (spec §3.4.4). H[i][j] = (-1)^popcount(i&j).
#pragma once

#include <math.h>

#include <cstdint>

#include "core/hd.h"

namespace v4::kernels {

// In place; n must be a power of two.
V4_HD inline void hadamard_transform(float* x, int64_t n) {
  // Butterfly stages of the fast transform; pairing j with j+h at every stage gives the
  // Sylvester ordering.
  for (int64_t h = 1; h < n; h *= 2) {
    for (int64_t i = 0; i < n; i += 2 * h) {
      for (int64_t j = i; j < i + h; ++j) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
  const float scale = 1.0f / sqrtf(static_cast<float>(n));
  for (int64_t i = 0; i < n; ++i) x[i] *= scale;
}

}  // namespace v4::kernels
