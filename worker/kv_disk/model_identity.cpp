#include "worker/kv_disk/model_identity.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "worker/kv_disk/kv_page_file.h"

namespace v4 {
namespace {

// Bytes of each tensor's data that enter the digest: one cache line, enough to tell seeds apart
// while touching one page of the mapping per tensor.
constexpr uint64_t kSampledBytes = 64;

template <class T>
void append(std::vector<uint8_t>& out, const T& value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), p, p + sizeof value);
}

void append_file(std::vector<uint8_t>& out, const GgufFile& file) {
  append(out, file.file_bytes());
  append(out, file.metadata().size());
  for (const GgufTensorInfo& t : file.tensors()) {
    out.insert(out.end(), t.name.begin(), t.name.end());
    append(out, static_cast<uint32_t>(t.type));
    for (uint64_t d : t.dims) append(out, d);
    append(out, t.n_bytes);
    if (t.data) out.insert(out.end(), t.data, t.data + std::min(t.n_bytes, kSampledBytes));
  }
}

}  // namespace

uint64_t model_identity(const GgufFile& file, const GgufFile* mtp_file) {
  std::vector<uint8_t> bytes;
  append_file(bytes, file);
  if (mtp_file) append_file(bytes, *mtp_file);
  return kv_page_checksum(bytes);
}

uint64_t model_identity_on_device(uint64_t identity, std::string_view device_kind) {
  std::vector<uint8_t> bytes(device_kind.begin(), device_kind.end());
  append(bytes, identity);
  return kv_page_checksum(bytes);
}

}  // namespace v4
