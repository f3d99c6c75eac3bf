// AVX2 versions of the weight·activation dot products of every quantized format (Q8_0, MXFP4,
// Q2_K, Q4_K, Q5_K, Q6_K, IQ2_XXS, IQ2_XS, IQ1_S, IQ1_M) and of the float weights (F32, F16,
// BF16), chosen at run time. They compute the same exact integer block
// sums as the scalar reference in kernels/cpu/vec_dot.cpp and then apply the reference's float
// scaling in the reference's order (float weights: the same products, double lanes and
// reduction tree), so their results are bit-identical to vec_dot — only faster.
#pragma once

#include <cstdint>

#include "core/ggml_type.h"

namespace v4::kernels {

// Whether this CPU runs the AVX2 kernels (checked once).
bool cpu_has_avx2();

// Whether an AVX2 kernel exists for `weight_type` (independent of the CPU).
bool has_avx2_dot(GgmlType weight_type);

// AVX2 dot product; only call when cpu_has_avx2() and has_avx2_dot(weight_type).
float vec_dot_avx2(GgmlType weight_type, const void* weight_row, const void* activation_row,
                   int64_t n);

// Whether vec_dot_avx2_x4 has a four-row kernel for `weight_type` (else it loops).
bool has_avx2_dot_x4(GgmlType weight_type);

// out[k] = vec_dot_avx2(weight_type, weight_row, activation_rows[k], n) for k < 4, bit for bit,
// sharing each weight block between the four rows; only call when cpu_has_avx2().
void vec_dot_avx2_x4(GgmlType weight_type, const void* weight_row,
                     const void* const activation_rows[4], int64_t n, float out[4]);

// out[k] = vec_dot_avx2(weight_type, weight_row, activation_rows[k], n) for k < rows (2 or 3),
// bit for bit, sharing each weight block between the rows (the remainder of a four-row split);
// only call when cpu_has_avx2().
void vec_dot_avx2_few(GgmlType weight_type, const void* weight_row,
                      const void* const* activation_rows, int rows, int64_t n, float* out);

// vec_dot through the fastest available kernel (AVX2 when possible, else the scalar reference).
float vec_dot_best(GgmlType weight_type, const void* weight_row, const void* activation_row,
                   int64_t n);

}  // namespace v4::kernels
