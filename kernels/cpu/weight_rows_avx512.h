// Four-row AVX-512 kernels for the one-scale 32-value formats (Q8_0, MXFP4) at a few tokens: a
// decode step, a speculative verification, a small batch. Like every SIMD kernel here they give
// the scalar reference's exact integer block sums and its float scaling in its order, so their
// results are bit-identical to vec_dot (kernels/cpu/vec_dot.cpp).
#pragma once

#include <cstdint>

#include "core/ggml_type.h"

namespace v4::kernels {

// Whether vec_dot_avx512_weight_rows handles `weight_type` (Q8_0 and MXFP4).
bool has_avx512_weight_rows(GgmlType weight_type);

// out[k·tokens + t] = vec_dot(weight_type, weight_rows[k], activation_rows[t], n) for k < rows
// (1 to 4) and t < tokens (1 to 3), bit for bit: several weight rows against a few activation
// rows (a decode step's tokens), each weight block decoded once for all of them and their float
// sums side by side; only call when cpu_has_avx512() and has_avx512_weight_rows(weight_type).
void vec_dot_avx512_weight_rows(GgmlType weight_type, const void* const* weight_rows, int rows,
                                const void* const* activation_rows, int tokens, int64_t n,
                                float* out);

}  // namespace v4::kernels
