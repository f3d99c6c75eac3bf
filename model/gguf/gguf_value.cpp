#include "model/gguf/gguf_value.h"

namespace v4 {

const char* gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::U8:
      return "U8";
    case GgufValueType::I8:
      return "I8";
    case GgufValueType::U16:
      return "U16";
    case GgufValueType::I16:
      return "I16";
    case GgufValueType::U32:
      return "U32";
    case GgufValueType::I32:
      return "I32";
    case GgufValueType::F32:
      return "F32";
    case GgufValueType::BOOL:
      return "BOOL";
    case GgufValueType::STRING:
      return "STRING";
    case GgufValueType::ARRAY:
      return "ARRAY";
    case GgufValueType::U64:
      return "U64";
    case GgufValueType::I64:
      return "I64";
    case GgufValueType::F64:
      return "F64";
  }
  return "INVALID";
}

bool gguf_value_type_is_valid(uint32_t raw) {
  return raw <= static_cast<uint32_t>(GgufValueType::F64);
}

bool gguf_value_type_is_integer(GgufValueType type) {
  switch (type) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::U16:
    case GgufValueType::I16:
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::U64:
    case GgufValueType::I64:
      return true;
    default:
      return false;
  }
}

uint64_t gguf_value_type_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::U16:
    case GgufValueType::I16:
      return 2;
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::F32:
      return 4;
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::F64:
      return 8;
    case GgufValueType::STRING:
    case GgufValueType::ARRAY:
      return 0;
  }
  return 0;
}

uint64_t gguf_value_min_encoded_size(GgufValueType type) {
  // Spec §5.1: a string is a u64 length + bytes; an array a u32 element type + u64 count +
  // elements.
  if (type == GgufValueType::STRING) return 8;
  if (type == GgufValueType::ARRAY) return 4 + 8;
  return gguf_value_type_size(type);
}

}  // namespace v4
