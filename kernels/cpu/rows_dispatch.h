// Internal to the SIMD dot products (AVX2 and AVX-512): a kernel template Kernel<NT> computes a
// weight row against NT activation rows; dispatch_rows picks NT = rows (1 to 4) at run time, so
// the per-row state stays in registers.
#pragma once

#include <cstdint>

namespace v4::kernels {

template <template <int> class Kernel, class Block, class Act>
void dispatch_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out) {
  const auto* x = static_cast<const Block*>(w);
  const Act* y[4];
  for (int t = 0; t < 4; ++t) y[t] = static_cast<const Act*>(a[t < rows ? t : rows - 1]);
  switch (rows) {
    case 1:
      return Kernel<1>::run(x, y, nb, out);
    case 2:
      return Kernel<2>::run(x, y, nb, out);
    case 3:
      return Kernel<3>::run(x, y, nb, out);
    default:
      return Kernel<4>::run(x, y, nb, out);
  }
}

}  // namespace v4::kernels
