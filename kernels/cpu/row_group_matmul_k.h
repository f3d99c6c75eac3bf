// Row groups for the 256-value formats of ds4's experts (IQ2_XXS, Q2_K); see
// kernels/cpu/row_group_matmul.h for the layout's idea. Internal to kernels/cpu.
#pragma once

#include <cstdint>

#include "core/ggml_type.h"
#include "kernels/cpu/matmul.h"

namespace v4::kernels {

// Whether `weight_type` is IQ2_XXS or Q2_K (the CPU check is the caller's).
bool row_groups_k_format(GgmlType weight_type);

// matmul_row_groups for those formats: xq holds n_tokens Q8_K activation rows.
void matmul_row_groups_k(const MatrixView& w, const uint8_t* xq, int64_t n_tokens, float* y,
                         int64_t y_stride, int64_t row_begin, int64_t row_end);

}  // namespace v4::kernels
