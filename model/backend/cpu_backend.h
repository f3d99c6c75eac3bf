// The CPU Backend: a thread pool sized to the cores running the scalar kernels of kernels/cpu.
#pragma once

#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "model/backend/backend.h"

namespace v4 {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(unsigned threads = 0);

  unsigned threads() const override { return pool_.size(); }
  void matmul(const kernels::MatrixView& w, const float* x, int64_t x_stride, int64_t n_tokens,
              float* y, int64_t y_stride) override;
  void rms_norm(const float* x, const float* weight, int64_t n, int64_t n_rows, float eps,
                float* y) override;
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) override;
  using Backend::matmul;

 private:
  ThreadPool pool_;
  std::vector<uint8_t> quantized_;  // activation rows in the dot-product format
};

}  // namespace v4
