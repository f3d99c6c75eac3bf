// CpuBackend's row-wise ops of the attention sub-layer: RoPE (spec §3.4.1), the FP8 KV
// simulation (§3.4.2) and the indexer's QAT transform (§3.4.4), over the kernels of kernels/cpu.
#include "kernels/cpu/fp4.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/rope.h"
#include "model/backend/cpu_backend.h"

namespace v4 {

void CpuBackend::rope(float* x, int64_t n, int64_t heads, int64_t head_stride, int64_t offset,
                      int64_t rope_dim, const uint64_t* positions, const float* freqs,
                      bool inverse) {
  run(n * heads, n * heads * rope_dim * 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      kernels::rope_rotate(x + i * head_stride + offset, freqs, rope_dim / 2, positions[i / heads],
                           inverse);
    }
  });
}

void CpuBackend::fp8_round_trip(float* x, int64_t n_rows, int64_t stride, int64_t n,
                                int64_t block) {
  run(n_rows, n_rows * n * 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) kernels::fp8_round_trip(x + r * stride, n, block);
  });
}

void CpuBackend::indexer_qat(float* x, int64_t n_rows, int64_t dim) {
  run(n_rows, n_rows * dim * 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) kernels::indexer_qat_transform(x + r * dim, dim);
  });
}

void CpuBackend::scale(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace v4
