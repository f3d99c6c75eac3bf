#include "model/backend/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/token_candidates.h"
#include "kernels/cpu/whole_row_draw.h"

namespace v4 {
namespace {

// Below this many multiply-adds waking the pool costs more than it saves (decode of small
// layers).
constexpr int64_t kMinParallelWork = int64_t{1} << 17;

// Host memory, 64-byte aligned (a cache line; what the AVX2 kernels like).
class HostBuffer final : public DeviceBuffer {
 public:
  explicit HostBuffer(size_t bytes)
      : bytes_(bytes),
        data_(static_cast<uint8_t*>(
            ::operator new (std::max<size_t>(bytes, 1), std::align_val_t{64}))) {}
  ~HostBuffer() override { ::operator delete (data_, std::align_val_t{64}); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  void* data() override { return data_; }
  size_t bytes() const override { return bytes_; }
  DeviceKind device() const override { return DeviceKind::kCpu; }

 private:
  size_t bytes_;
  uint8_t* data_;
};

// Checks that bytes [offset, offset + bytes) of `t` lie inside its buffer.
Status check_span(const Tensor& t, size_t offset, size_t bytes, const char* what) {
  if (!t.valid()) return Status::error(std::string(what) + ": tensor has no buffer");
  if (offset > t.bytes() || bytes > t.bytes() - offset ||
      t.offset + t.bytes() > t.buffer->bytes()) {
    return Status::error(std::string(what) + ": bytes [" + std::to_string(offset) + ", " +
                         std::to_string(offset + bytes) + ") outside a tensor of " +
                         std::to_string(t.bytes()) + " bytes");
  }
  return Status::ok();
}

}  // namespace

CpuBackend::CpuBackend(unsigned threads) : pool_(threads) {}

std::unique_ptr<DeviceBuffer> CpuBackend::allocate(size_t bytes) {
  return std::make_unique<HostBuffer>(bytes);
}

Status CpuBackend::copy_to_device(const void* host, const Tensor& dst, size_t offset,
                                  size_t bytes) {
  if (Status s = check_span(dst, offset, bytes, "copy_to_device"); !s) return s;
  if (bytes > 0) std::memcpy(dst.data<uint8_t>() + offset, host, bytes);  // host may be null then
  return Status::ok();
}

Status CpuBackend::copy_to_host(const Tensor& src, size_t offset, void* host, size_t bytes) {
  if (Status s = check_span(src, offset, bytes, "copy_to_host"); !s) return s;
  if (bytes > 0) std::memcpy(host, src.data<uint8_t>() + offset, bytes);
  return Status::ok();
}

void CpuBackend::run(int64_t n, int64_t work, FunctionRef<void(int64_t, int64_t)> fn) {
  if (n <= 0) return;
  if (work < kMinParallelWork || n == 1) {
    fn(0, n);
    return;
  }
  pool_.parallel_for(n, fn);
}

void CpuBackend::quantize_rows(GgmlType type, const float* x, const int64_t* x_rows, int64_t cols,
                               int64_t rows, std::vector<uint8_t>& out) {
  const size_t bytes = kernels::activation_row_bytes(type, cols);
  if (out.size() < bytes * static_cast<size_t>(rows)) out.resize(bytes * static_cast<size_t>(rows));
  uint8_t* q = out.data();
  run(rows, rows * cols * 8, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t from = x_rows ? x_rows[t] : t;
      kernels::quantize_activation_row(type, x + from * cols, cols, q + t * bytes);
    }
  });
}

void CpuBackend::matmul(const kernels::MatrixView& w, const float* x, int64_t x_stride,
                        int64_t n_tokens, float* y, int64_t y_stride) {
  if (n_tokens <= 0 || w.rows <= 0) return;
  const size_t act_bytes = kernels::activation_row_bytes(w.type, w.cols);
  if (quantized_.size() < act_bytes * static_cast<size_t>(n_tokens)) {
    quantized_.resize(act_bytes * static_cast<size_t>(n_tokens));
  }
  uint8_t* xq = quantized_.data();
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

void CpuBackend::embed(const kernels::MatrixView& table, const int32_t* tokens, int64_t n_tokens,
                       uint32_t copies, float* x) {
  const int64_t d = table.cols, flat = d * copies;
  run(n_tokens, n_tokens * flat * 4, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      float* row = x + t * flat;
      kernels::dequantize_row(
          table.type, table.data + static_cast<size_t>(tokens[t]) * table.row_bytes, row, d);
      for (uint32_t s = 1; s < copies; ++s) std::copy_n(row, d, row + s * d);
    }
  });
}

void CpuBackend::gather_rows(const float* src, int64_t width, const int64_t* rows, int64_t n,
                             float* dst) {
  run(n, n * width, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      std::copy_n(src + rows[i] * width, width, dst + i * width);
  });
}

void CpuBackend::copy_rows(const float* src, int64_t src_stride, const int64_t* rows, int64_t n,
                           int64_t width, float* dst, int64_t dst_stride) {
  run(n, n * width, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      std::copy_n(src + (rows ? rows[i] : i) * src_stride, width, dst + i * dst_stride);
  });
}

void CpuBackend::sum_slots(const float* slots, const int64_t* slot_rows, int64_t n, uint32_t k,
                           int64_t width, float* out) {
  run(n, n * k * width, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      float* o = out + t * width;
      std::fill_n(o, width, 0.0f);
      for (uint32_t s = 0; s < k; ++s) {
        const float* row = slots + slot_rows[t * k + s] * width;
        for (int64_t i = 0; i < width; ++i) o[i] += row[i];
      }
    }
  });
}

void CpuBackend::add(const float* a, int64_t n, float* y) {
  constexpr int64_t kChunk = 4096;
  run((n + kChunk - 1) / kChunk, n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * kChunk; i < std::min(n, end * kChunk); ++i) y[i] += a[i];
  });
}

void CpuBackend::top_logits(const float* logits, int64_t n_rows, int64_t n_vocab, uint32_t k,
                            int32_t* ids, float* values, double* log_normalizer) {
  run(n_rows, n_rows * n_vocab * 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = logits + r * n_vocab;
      int32_t* row_ids = ids + r * k;
      float* row_values = values + r * k;
      kernels::select_top_candidates(row, n_vocab, k, row_ids, row_values);
      if (log_normalizer) log_normalizer[r] = kernels::log_normalizer(row, n_vocab, row_values[0]);
    }
  });
}

void CpuBackend::draw_rows(const float* logits, int64_t n_rows, int64_t n_vocab,
                           const kernels::RowDrawParams* params, int32_t* tokens,
                           float* token_logits) {
  run(n_rows, n_rows * n_vocab * 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      tokens[r] = -1;
      token_logits[r] = 0.0f;
      if (!(params[r].filters.temperature > 0.0f)) continue;
      const std::span<const float> row(logits + r * n_vocab, static_cast<size_t>(n_vocab));
      tokens[r] = kernels::draw_whole_row(row, params[r]);
      token_logits[r] = row[static_cast<size_t>(tokens[r])];
    }
  });
}

void CpuBackend::parallel_for(int64_t n, FunctionRef<void(int64_t, int64_t)> fn) {
  pool_.parallel_for(n, fn);
}

}  // namespace v4
