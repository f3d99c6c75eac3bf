// Quantized matrix-vector products over a batch of activation rows, done the way ggml does them:
// each activation row is first quantized to the weight type's dot-product format
// (vec_dot_activation_type: Q8_0, Q8_K or F32), then every output element is one vec_dot of a
// weight row with that quantized row. No weight is ever dequantized as a whole.
//
// Layouts: a weight matrix is `rows` rows of `cols` values in `type`, rows `row_bytes` apart
// (ne0 = cols, spec §5.1). Activations are `n_tokens` rows of `cols` floats, `x_stride` floats
// apart; outputs are `n_tokens` rows of `rows` floats, `y_stride` floats apart.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/ggml_type.h"

namespace v4::kernels {

struct MatrixView {
  GgmlType type = GgmlType::F32;
  const uint8_t* data = nullptr;
  int64_t cols = 0;
  int64_t rows = 0;
  size_t row_bytes = 0;
  // Q8_0 rows in the device's split layout (device_ops_matmul.h, split_q8_0_rows): each row holds
  // its blocks' 32 quants, then their fp16 scales. Only a device backend makes or reads it; the
  // CPU kernels read the GGUF block layout alone.
  bool q8_0_split = false;
};

// Bytes one quantized activation row of `cols` values takes for a `weight_type` matrix.
size_t activation_row_bytes(GgmlType weight_type, int64_t cols);

// Quantizes one activation row into the dot-product format of `weight_type`.
void quantize_activation_row(GgmlType weight_type, const float* x, int64_t cols, void* dst);

// y[t·y_stride + r] = W[r] · xq[t] for r in [row_begin, row_end) and all tokens t, where xq holds
// n_tokens rows of activation_row_bytes(W.type, W.cols) bytes. Each output is one vec_dot, so a
// result never depends on how rows are split among threads.
void matmul_rows(const MatrixView& w, const uint8_t* xq, int64_t n_tokens, float* y,
                 int64_t y_stride, int64_t row_begin, int64_t row_end);

}  // namespace v4::kernels
