#include "kernels/cpu/matmul.h"

#include <cstring>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/vec_dot_avx2.h"

namespace v4::kernels {

size_t activation_row_bytes(GgmlType weight_type, int64_t cols) {
  const GgmlType act = vec_dot_activation_type(weight_type);
  const GgmlTypeTraits traits = ggml_type_traits(act);
  return static_cast<size_t>(cols / traits.block_size) * traits.type_size;
}

void quantize_activation_row(GgmlType weight_type, const float* x, int64_t cols, void* dst) {
  switch (vec_dot_activation_type(weight_type)) {
    case GgmlType::Q8_0:
      quantize_row_q8_0(x, dst, cols);
      break;
    case GgmlType::Q8_K:
      quantize_row_q8_k(x, dst, cols);
      break;
    default:
      std::memcpy(dst, x, static_cast<size_t>(cols) * sizeof(float));
      break;
  }
}

void matmul_rows(const MatrixView& w, const uint8_t* xq, int64_t n_tokens, float* y,
                 int64_t y_stride, int64_t row_begin, int64_t row_end) {
  const size_t act_bytes = activation_row_bytes(w.type, w.cols);
  // Token-inner loop: a weight row is read once from memory and reused for every token.
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = w.data + static_cast<size_t>(r) * w.row_bytes;
    for (int64_t t = 0; t < n_tokens; ++t) {
      y[t * y_stride + r] =
          vec_dot_best(w.type, row, xq + static_cast<size_t>(t) * act_bytes, w.cols);
    }
  }
}

}  // namespace v4::kernels
