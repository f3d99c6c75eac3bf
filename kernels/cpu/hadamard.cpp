#include "kernels/cpu/hadamard.h"

#include <cmath>

namespace v4::kernels {

void hadamard_transform(float* x, int64_t n) {
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
  const float scale = 1.0f / std::sqrt(static_cast<float>(n));
  for (int64_t i = 0; i < n; ++i) x[i] *= scale;
}

}  // namespace v4::kernels
