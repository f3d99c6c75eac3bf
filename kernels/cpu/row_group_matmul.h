// Matrix products for many tokens (prefill, large batches) on AVX-512 VNNI, by groups of 16
// weight rows repacked on the fly so that each 32-bit SIMD lane owns one row: a block's products
// of a row accumulate in its lane, so no per-block horizontal reduction is needed (the cost that
// bounds the row-at-a-time kernels), and the float sum of every row advances in its lane, block
// by block, in the reference's order — results stay bit-identical to vec_dot.
//
// The repacked group (weights as int8, scales as float) is built in a small per-thread buffer
// from the GGUF rows and reused for every token, so nothing is cached and no memory is added;
// repacking costs about one token's pass over the group, which is why matmul_rows uses this only
// from kRowGroupMinTokens tokens. The 256-value formats: kernels/cpu/row_group_matmul_k.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/ggml_type.h"
#include "kernels/cpu/matmul.h"

namespace v4::kernels {

constexpr int64_t kRowGroupRows = 16;
// From 4 tokens the grouped kernels beat the row kernels for every format (a group's repacking is
// a few register transposes): Q8_0 97 against 49 G products/s, MXFP4 65 against 43 (bench/
// dequant_bench, 4 tokens); at 3 tokens IQ2_XXS and Q2_K are about even.
constexpr int64_t kRowGroupMinTokens = 4;

// Whether this CPU runs the grouped kernel for `weight_type` (Q8_0, MXFP4, IQ2_XXS and Q2_K with
// AVX-512 VNNI, see cpu_has_avx512).
bool row_groups_available(GgmlType weight_type);

// y[t·y_stride + r] = vec_dot(W.type, W[r], xq[t]) for r in [row_begin, row_end) and every token,
// bit for bit; xq holds n_tokens activation rows (Q8_0; Q8_K for IQ2_XXS and Q2_K). Only call when
// row_groups_available(w.type) and row_end − row_begin is a multiple of 16.
void matmul_row_groups(const MatrixView& w, const uint8_t* xq, int64_t n_tokens, float* y,
                       int64_t y_stride, int64_t row_begin, int64_t row_end);

}  // namespace v4::kernels
