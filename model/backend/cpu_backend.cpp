#include "model/backend/cpu_backend.h"

#include <cmath>

namespace v4 {

CpuBackend::CpuBackend(unsigned threads) : pool_(threads) {}

void CpuBackend::matmul(const kernels::MatrixView& w, const float* x, int64_t x_stride,
                        int64_t n_tokens, float* y, int64_t y_stride) {
  if (n_tokens <= 0 || w.rows <= 0) return;
  const size_t act_bytes = kernels::activation_row_bytes(w.type, w.cols);
  quantized_.resize(act_bytes * static_cast<size_t>(n_tokens));
  uint8_t* xq = quantized_.data();
  // Below this many multiply-adds waking the pool costs more than it saves (decode of small
  // layers); the per-element arithmetic is the same either way.
  constexpr int64_t kMinParallelWork = int64_t{1} << 17;
  if (w.rows * w.cols * n_tokens < kMinParallelWork) {
    for (int64_t t = 0; t < n_tokens; ++t) {
      kernels::quantize_activation_row(w.type, x + t * x_stride, w.cols, xq + t * act_bytes);
    }
    kernels::matmul_rows(w, xq, n_tokens, y, y_stride, 0, w.rows);
    return;
  }
  pool_.parallel_for(n_tokens, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      kernels::quantize_activation_row(w.type, x + t * x_stride, w.cols, xq + t * act_bytes);
    }
  });
  // Split output rows in blocks so threads touch disjoint, contiguous weight ranges.
  constexpr int64_t kRowsPerTask = 16;
  const int64_t tasks = (w.rows + kRowsPerTask - 1) / kRowsPerTask;
  pool_.parallel_for(tasks, [&](int64_t begin, int64_t end) {
    kernels::matmul_rows(w, xq, n_tokens, y, y_stride, begin * kRowsPerTask,
                         std::min(w.rows, end * kRowsPerTask));
  });
}

void CpuBackend::rms_norm(const float* x, const float* weight, int64_t n, int64_t n_rows, float eps,
                          float* y) {
  auto one_row = [&](int64_t r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double ss = 0.0;  // spec conventions: accumulate the sum of squares in fp64 like ds4
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
    for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * scale * (weight ? weight[i] : 1.0f);
  };
  if (n_rows * n < 4096) {
    for (int64_t r = 0; r < n_rows; ++r) one_row(r);
    return;
  }
  pool_.parallel_for(n_rows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) one_row(r);
  });
}

void CpuBackend::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  pool_.parallel_for(n, fn);
}

}  // namespace v4
