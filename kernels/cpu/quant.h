// Row-level entry points for the quantized weight formats of spec §6: dequantization (bit-exact
// with ggml), reference quantization, activation quantization (Q8_0 / Q8_K, as ggml's dot
// products use) and a reference dot product of a quantized weight row with an activation row.
//
// Rows hold n values, n a multiple of the type's block size; buffers are caller-owned and never
// allocated here. Block rows need the alignment of their block struct (kernels/cpu/quant_blocks.h:
// 2 bytes for the fp16-scaled formats, 4 for Q8_K, 1 for IQ1_M and MXFP4).
#pragma once

#include <cstdint>

#include "core/ggml_type.h"

namespace v4::kernels {

// Types whose rows dequantize_row / quantize_row handle:
// F32, F16, BF16, Q8_0, Q2_K, Q4_K, Q5_K, Q6_K, IQ2_XXS, IQ2_XS, IQ1_S, IQ1_M, MXFP4.
bool can_dequantize(GgmlType type);
bool can_quantize(GgmlType type);

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

// Activation quantization for the dot products (n a multiple of 32 resp. 256).
void quantize_row_q8_0(const float* src, void* dst, int64_t n);
void quantize_row_q8_k(const float* src, void* dst, int64_t n);

// The activation format a weight type's dot product takes: Q8_0 for Q8_0 and MXFP4, Q8_K for the
// K and IQ types, F32 for F32/F16/BF16.
GgmlType vec_dot_activation_type(GgmlType weight_type);

// Dot product of one weight row (type `weight_type`) with one activation row already in
// vec_dot_activation_type(weight_type). Accumulates like ggml's reference: integer sums per
// block, scaled in fp32.
float vec_dot(GgmlType weight_type, const void* weight_row, const void* activation_row, int64_t n);

}  // namespace v4::kernels
