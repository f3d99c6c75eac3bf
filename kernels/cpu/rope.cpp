#include "kernels/cpu/rope.h"

#include <cmath>

namespace v4::kernels {

void rope_rotate(float* x, const float* freqs, int64_t n_pairs, uint64_t pos, bool inverse) {
  for (int64_t k = 0; k < n_pairs; ++k) {
    const double theta = static_cast<double>(pos) * freqs[k];
    const float c = static_cast<float>(std::cos(theta));
    const float s =
        inverse ? -static_cast<float>(std::sin(theta)) : static_cast<float>(std::sin(theta));
    const float x0 = x[2 * k], x1 = x[2 * k + 1];
    x[2 * k] = x0 * c - x1 * s;
    x[2 * k + 1] = x0 * s + x1 * c;
  }
}

}  // namespace v4::kernels
