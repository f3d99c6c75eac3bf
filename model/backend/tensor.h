// Memory the backend owns and the tensor values that address it. A DeviceBuffer is a block of
// bytes on the backend's device (host memory for CpuBackend, device memory for a GPU backend);
// a Tensor is a typed, shaped view into one (ggml's conventions: ne[0] is the innermost
// dimension, nb[i] the byte stride of dimension i, quantized types count values in blocks).
// Tensors are plain values: copying one copies the view, never the bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/ggml_type.h"

namespace v4 {

enum class DeviceKind { kCpu, kCuda };

class DeviceBuffer {
 public:
  virtual ~DeviceBuffer() = default;
  // Base address on the buffer's device (not dereferenceable on the host for device memory).
  virtual void* data() = 0;
  virtual size_t bytes() const = 0;
  virtual DeviceKind device() const = 0;
};

struct Tensor {
  DeviceBuffer* buffer = nullptr;
  size_t offset = 0;  // bytes from the buffer's start
  GgmlType type = GgmlType::F32;
  std::array<int64_t, 4> ne{0, 1, 1, 1};
  std::array<size_t, 4> nb{0, 0, 0, 0};

  // A contiguous tensor of `type` with the given extents (innermost first) at `offset`.
  static Tensor contiguous(DeviceBuffer* buffer, size_t offset, GgmlType type,
                           std::array<int64_t, 4> ne);
  // Every byte of `buffer` as one I8 tensor: the target of a copy at a byte offset.
  static Tensor whole(DeviceBuffer* buffer) {
    return contiguous(buffer, 0, GgmlType::I8, {static_cast<int64_t>(buffer->bytes()), 1, 1, 1});
  }

  int64_t elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  // Bytes from the first to one past the last element (contiguous layout).
  size_t bytes() const { return nb[3] * static_cast<size_t>(ne[3]); }
  bool valid() const { return buffer != nullptr; }

  // Rows [first, first + count) of dimension 1 (a view; same buffer).
  Tensor rows(int64_t first, int64_t count) const;

  template <class T>
  T* data() const {
    return reinterpret_cast<T*>(static_cast<uint8_t*>(buffer->data()) + offset);
  }
};

}  // namespace v4
