#include "model/backend/kv_row_codec.h"

namespace v4 {

Result<KvStorage> kv_storage_from_name(const std::string& name) {
  if (name == "f32") return KvStorage::kF32;
  if (name == "f16") return KvStorage::kF16;
  if (name == "fp8") return KvStorage::kFp8;
  return Status::error("KV storage \"" + name + "\": expected f32, f16 or fp8");
}

const char* kv_storage_name(KvStorage storage) {
  switch (storage) {
    case KvStorage::kF32:
      return "f32";
    case KvStorage::kF16:
      return "f16";
    case KvStorage::kFp8:
      return "fp8";
  }
  return "?";
}

}  // namespace v4
