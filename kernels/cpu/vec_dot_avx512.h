// AVX-512 dot products (F, BW, VL, DQ, VBMI and VNNI, plus F16C) for the routed experts'
// formats, where the AVX2 kernels are compute-bound: IQ2_XXS and Q2_K (ds4's recipe) and MXFP4
// (the llama.cpp recipe); four-row kernels for Q8_0 and MXFP4 at a few tokens; and several-row
// kernels for the float weights (that recipe's BF16 output head). Like the AVX2 kernels they
// compute the scalar reference's exact integer block sums and then its float scaling in its order,
// so their results are bit-identical to vec_dot (kernels/cpu/vec_dot.cpp) — only faster: a block's
// codes, signs and scales are decoded in 512-bit lanes (byte permutes instead of per-group table
// work, VNNI dots), which the AVX2 kernels cannot do.
#pragma once

#include <cstdint>

#include "core/ggml_type.h"

namespace v4::kernels {

// Whether this CPU runs the AVX-512 kernels (checked once). V4_CPU_SIMD=avx2 in the
// environment turns them off, so the AVX2 tier can be measured on the same machine.
bool cpu_has_avx512();

// Whether an AVX-512 kernel exists for `weight_type` (independent of the CPU).
bool has_avx512_dot(GgmlType weight_type);

// out[k] = vec_dot(weight_type, weight_row, activation_rows[k], n) for k < rows (1 to 4), bit
// for bit, decoding each weight block once for all rows; only call when cpu_has_avx512() and
// has_avx512_dot(weight_type).
void vec_dot_avx512_rows(GgmlType weight_type, const void* weight_row,
                         const void* const* activation_rows, int rows, int64_t n, float* out);

// Whether vec_dot_avx512_float_rows handles `weight_type` (the float weights F32, F16, BF16).
bool has_avx512_float_rows(GgmlType weight_type);

// out[k] = vec_dot(weight_type, weight_rows[k], activation_row, n) for k < rows (1 to 4), bit for
// bit: several weight rows against one F32 activation row, so that their float sums (chains of
// dependent adds) advance side by side; only call when cpu_has_avx512() and
// has_avx512_float_rows(weight_type).
void vec_dot_avx512_float_rows(GgmlType weight_type, const void* const* weight_rows, int rows,
                               const void* activation_row, int64_t n, float* out);

// out[k] = vec_dot(weight_type, weight_row, activation_rows[k], n) for k < tokens (1 to 4), bit
// for bit: one float weight row against several F32 activation rows, its values read and widened
// once for all of them; only call when cpu_has_avx512() and has_avx512_float_rows(weight_type).
void vec_dot_avx512_float_tokens(GgmlType weight_type, const void* weight_row,
                                 const void* const* activation_rows, int tokens, int64_t n,
                                 float* out);

}  // namespace v4::kernels
