#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/vec_dot_avx2.h"
#include "kernels/cpu/vec_dot_avx512.h"

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
  const auto act = [&](int64_t t) { return xq + static_cast<size_t>(t) * act_bytes; };
  if (cpu_has_avx512() && has_avx512_dot(w.type)) {
    // Up to four tokens per call share each decoded weight block, bit for bit as one by one.
    for (int64_t r = row_begin; r < row_end; ++r) {
      const uint8_t* row = w.data + static_cast<size_t>(r) * w.row_bytes;
      for (int64_t t = 0; t < n_tokens; t += 4) {
        const int rows = static_cast<int>(std::min<int64_t>(4, n_tokens - t));
        const void* const acts[4] = {act(t), act(t + std::min(1, rows - 1)),
                                     act(t + std::min(2, rows - 1)),
                                     act(t + std::min(3, rows - 1))};
        float out[4];
        vec_dot_avx512_rows(w.type, row, acts, rows, w.cols, out);
        for (int k = 0; k < rows; ++k) y[(t + k) * y_stride + r] = out[k];
      }
    }
    return;
  }
  if (cpu_has_avx512() && has_avx512_dot_4w(w.type)) {
    // Float weights: four weight rows per call, each token on its own (n is an F32 row).
    int64_t r = row_begin;
    for (; r + 4 <= row_end; r += 4) {
      const void* const rows[4] = {w.data + static_cast<size_t>(r) * w.row_bytes,
                                   w.data + static_cast<size_t>(r + 1) * w.row_bytes,
                                   w.data + static_cast<size_t>(r + 2) * w.row_bytes,
                                   w.data + static_cast<size_t>(r + 3) * w.row_bytes};
      for (int64_t t = 0; t < n_tokens; ++t) {
        float out[4];
        vec_dot_avx512_4w(w.type, rows, act(t), w.cols, out);
        for (int k = 0; k < 4; ++k) y[t * y_stride + r + k] = out[k];
      }
    }
    for (; r < row_end; ++r) {
      const uint8_t* row = w.data + static_cast<size_t>(r) * w.row_bytes;
      for (int64_t t = 0; t < n_tokens; ++t)
        y[t * y_stride + r] = vec_dot_best(w.type, row, act(t), w.cols);
    }
    return;
  }
  // Four tokens at a time (and a remainder of two or three together) share each weight block
  // where a multi-row kernel exists; it gives every token the single-row result bit for bit, so
  // grouping never changes an output.
  const bool shared = cpu_has_avx2() && has_avx2_dot_x4(w.type);
  const bool by_four = n_tokens >= 4 && shared;
  // Token-inner loop: a weight row is read once from memory and reused for every token.
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = w.data + static_cast<size_t>(r) * w.row_bytes;
    int64_t t = 0;
    for (; by_four && t + 4 <= n_tokens; t += 4) {
      const void* const rows[4] = {act(t), act(t + 1), act(t + 2), act(t + 3)};
      float out[4];
      vec_dot_avx2_x4(w.type, row, rows, w.cols, out);
      for (int k = 0; k < 4; ++k) y[(t + k) * y_stride + r] = out[k];
    }
    if (shared && n_tokens - t >= 2) {  // two or three left: they share the block too
      const int few = static_cast<int>(n_tokens - t);
      const void* const rows[3] = {act(t), act(t + 1), act(std::min(t + 2, n_tokens - 1))};
      float out[3];
      vec_dot_avx2_few(w.type, row, rows, few, w.cols, out);
      for (int k = 0; k < few; ++k) y[(t + k) * y_stride + r] = out[k];
      t = n_tokens;
    }
    for (; t < n_tokens; ++t) y[t * y_stride + r] = vec_dot_best(w.type, row, act(t), w.cols);
  }
}

}  // namespace v4::kernels
