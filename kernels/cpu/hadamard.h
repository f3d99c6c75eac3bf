// Walsh–Hadamard transform in natural (Sylvester) order, scaled by 1/sqrt(n): the rotation the
// lightning indexer applies before its FP4 simulation (spec §3.4.4). H[i][j] = (-1)^popcount(i&j).
#pragma once

#include <cstdint>

namespace v4::kernels {

// In place; n must be a power of two.
void hadamard_transform(float* x, int64_t n);

}  // namespace v4::kernels
