#include "model/gguf/gguf_encoder.h"

#include <algorithm>
#include <limits>

namespace v4 {
namespace {

template <class T>
bool fits(uint64_t value) {
  return value <= std::numeric_limits<T>::max();
}
template <class T>
bool fits(int64_t value) {
  return value >= std::numeric_limits<T>::min() && value <= std::numeric_limits<T>::max();
}

// Which variant alternative each type is held in (gguf_value.h: widened integers, double).
bool holds_expected_alternative(const GgufValue& value) {
  switch (value.type) {
    case GgufValueType::U8:
    case GgufValueType::U16:
    case GgufValueType::U32:
    case GgufValueType::U64:
      return std::holds_alternative<uint64_t>(value.value);
    case GgufValueType::I8:
    case GgufValueType::I16:
    case GgufValueType::I32:
    case GgufValueType::I64:
      return std::holds_alternative<int64_t>(value.value);
    case GgufValueType::F32:
    case GgufValueType::F64:
      return std::holds_alternative<double>(value.value);
    case GgufValueType::BOOL:
      return std::holds_alternative<bool>(value.value);
    case GgufValueType::STRING:
      return std::holds_alternative<std::string>(value.value);
    case GgufValueType::ARRAY:
      return std::holds_alternative<std::vector<GgufValue>>(value.value);
  }
  return false;
}

bool integer_fits(const GgufValue& value) {
  switch (value.type) {
    case GgufValueType::U8:
      return fits<uint8_t>(std::get<uint64_t>(value.value));
    case GgufValueType::U16:
      return fits<uint16_t>(std::get<uint64_t>(value.value));
    case GgufValueType::U32:
      return fits<uint32_t>(std::get<uint64_t>(value.value));
    case GgufValueType::I8:
      return fits<int8_t>(std::get<int64_t>(value.value));
    case GgufValueType::I16:
      return fits<int16_t>(std::get<int64_t>(value.value));
    case GgufValueType::I32:
      return fits<int32_t>(std::get<int64_t>(value.value));
    default:
      return true;
  }
}

// Levels of arrays in `value` (0 for a scalar), counted no further than `limit` + 1 so that the
// recursion stays bounded.
uint32_t array_levels(const GgufValue& value, uint32_t limit) {
  if (!value.is_array() || !std::holds_alternative<std::vector<GgufValue>>(value.value)) return 0;
  uint32_t deepest = 0;
  if (limit > 0) {
    for (const GgufValue& element : value.elements()) {
      deepest = std::max(deepest, array_levels(element, limit - 1));
    }
  }
  return 1 + deepest;
}

std::string array_problem(const GgufValue& value, uint32_t depth) {
  if (!gguf_value_type_is_valid(static_cast<uint32_t>(value.element_type))) {
    return "invalid array element type " +
           std::to_string(static_cast<uint32_t>(value.element_type));
  }
  const std::vector<GgufValue>& elements = value.elements();
  for (size_t i = 0; i < elements.size(); ++i) {
    if (elements[i].type != value.element_type) {
      return "array element " + std::to_string(i) + " has type " +
             gguf_value_type_name(elements[i].type) + ", expected " +
             gguf_value_type_name(value.element_type);
    }
    std::string problem = gguf_value_problem(elements[i], depth);
    if (!problem.empty()) return "array element " + std::to_string(i) + ": " + problem;
  }
  return "";
}

}  // namespace

std::string gguf_value_problem(const GgufValue& value, uint32_t depth) {
  // The reader refuses deeper nesting, so the writer must not produce it.
  if (depth == 0 && array_levels(value, kGgufMaxArrayDepth) > kGgufMaxArrayDepth) {
    return "arrays nest deeper than " + std::to_string(kGgufMaxArrayDepth) + " levels";
  }
  if (!gguf_value_type_is_valid(static_cast<uint32_t>(value.type))) {
    return "invalid value type " + std::to_string(static_cast<uint32_t>(value.type));
  }
  if (!holds_expected_alternative(value)) {
    return std::string("value held does not match its type ") + gguf_value_type_name(value.type);
  }
  if (!integer_fits(value)) {
    const std::string text = std::holds_alternative<uint64_t>(value.value)
                                 ? std::to_string(std::get<uint64_t>(value.value))
                                 : std::to_string(std::get<int64_t>(value.value));
    return "value " + text + " does not fit " + gguf_value_type_name(value.type);
  }
  if (value.is_array()) return array_problem(value, depth + 1);
  return "";
}

void GgufEncoder::put_value(const GgufValue& value) {
  switch (value.type) {
    case GgufValueType::U8:
      return put(static_cast<uint8_t>(std::get<uint64_t>(value.value)));
    case GgufValueType::I8:
      return put(static_cast<int8_t>(std::get<int64_t>(value.value)));
    case GgufValueType::U16:
      return put(static_cast<uint16_t>(std::get<uint64_t>(value.value)));
    case GgufValueType::I16:
      return put(static_cast<int16_t>(std::get<int64_t>(value.value)));
    case GgufValueType::U32:
      return put(static_cast<uint32_t>(std::get<uint64_t>(value.value)));
    case GgufValueType::I32:
      return put(static_cast<int32_t>(std::get<int64_t>(value.value)));
    case GgufValueType::U64:
      return put(std::get<uint64_t>(value.value));
    case GgufValueType::I64:
      return put(std::get<int64_t>(value.value));
    case GgufValueType::F32:
      return put(static_cast<float>(std::get<double>(value.value)));
    case GgufValueType::F64:
      return put(std::get<double>(value.value));
    case GgufValueType::BOOL:
      return put<uint8_t>(std::get<bool>(value.value) ? 1 : 0);
    case GgufValueType::STRING:
      return put_string(std::get<std::string>(value.value));
    case GgufValueType::ARRAY: {
      // Spec §5.1: u32 element type, u64 count, then the elements without type tags.
      put(static_cast<uint32_t>(value.element_type));
      put<uint64_t>(value.elements().size());
      for (const GgufValue& element : value.elements()) put_value(element);
      return;
    }
  }
}

void GgufEncoder::put_key_value(std::string_view key, const GgufValue& value) {
  put_string(key);
  put(static_cast<uint32_t>(value.type));
  put_value(value);
}

}  // namespace v4
