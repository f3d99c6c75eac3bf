#include "model/backend/tensor.h"

namespace v4 {

Tensor Tensor::contiguous(DeviceBuffer* buffer, size_t offset, GgmlType type,
                          std::array<int64_t, 4> ne) {
  const GgmlTypeTraits traits = ggml_type_traits(type);
  Tensor t;
  t.buffer = buffer;
  t.offset = offset;
  t.type = type;
  t.ne = ne;
  t.nb[0] = traits.type_size;
  t.nb[1] = static_cast<size_t>(ne[0] / traits.block_size) * traits.type_size;
  for (size_t i = 2; i < 4; ++i) t.nb[i] = t.nb[i - 1] * static_cast<size_t>(ne[i - 1]);
  return t;
}

Tensor Tensor::rows(int64_t first, int64_t count) const {
  Tensor t = *this;
  t.offset += static_cast<size_t>(first) * nb[1];
  t.ne[1] = count;
  return t;
}

}  // namespace v4
