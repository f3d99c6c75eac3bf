#include "model/backend/device/device_backend.h"

namespace v4::device {

Status check_tensor_span(const Tensor& t, size_t offset, size_t bytes, const char* what) {
  if (!t.valid()) return Status::error(std::string(what) + ": tensor has no buffer");
  if (offset > t.bytes() || bytes > t.bytes() - offset ||
      t.offset + t.bytes() > t.buffer->bytes()) {
    return Status::error(std::string(what) + ": bytes [" + std::to_string(offset) + ", " +
                         std::to_string(offset + bytes) + ") outside a tensor of " +
                         std::to_string(t.bytes()) + " bytes");
  }
  return Status::ok();
}

}  // namespace v4::device
