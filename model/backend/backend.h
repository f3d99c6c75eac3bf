// The compute operations the V4 forward pass is written against (architecture: model/ calls a
// Backend, never kernels or devices directly). Every op is deterministic and its results do not
// depend on the number of threads: work is split by output element, never by reduction.
#pragma once

#include <cstdint>
#include <functional>

#include "kernels/cpu/matmul.h"

namespace v4 {

class Backend {
 public:
  virtual ~Backend() = default;

  virtual unsigned threads() const = 0;

  // y[t·y_stride + r] = W[r] · x[t·x_stride ..] for n_tokens activation rows of w.cols floats.
  // Activations are quantized to the weight type's dot-product format first (like ggml).
  virtual void matmul(const kernels::MatrixView& w, const float* x, int64_t x_stride,
                      int64_t n_tokens, float* y, int64_t y_stride) = 0;

  // Row-wise RMSNorm of n_rows rows of n values: y = x / sqrt(mean(x²) + eps) ⊙ weight
  // (weight may be null: no weight). y may alias x.
  virtual void rms_norm(const float* x, const float* weight, int64_t n, int64_t n_rows, float eps,
                        float* y) = 0;

  // Runs fn on disjoint ranges of [0, n); each index is handled by exactly one call.
  virtual void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) = 0;

  // Convenience: contiguous rows.
  void matmul(const kernels::MatrixView& w, const float* x, int64_t n_tokens, float* y) {
    matmul(w, x, w.cols, n_tokens, y, w.rows);
  }
};

}  // namespace v4
