#include "apps/value_format.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace v4::apps {

std::string format_bytes(uint64_t bytes) {
  char buf[64];
  if (bytes >= (1ull << 30)) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / 1073741824.0);
  } else if (bytes >= (1ull << 20)) {
    std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / 1048576.0);
  } else if (bytes >= 1024) {
    std::snprintf(buf, sizeof buf, "%.2f KiB", bytes / 1024.0);
  } else {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  }
  return buf;
}

namespace {

std::string scalar_text(const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::U8:
    case GgufValueType::U16:
    case GgufValueType::U32:
    case GgufValueType::U64:
      return std::to_string(std::get<uint64_t>(v.value));
    case GgufValueType::I8:
    case GgufValueType::I16:
    case GgufValueType::I32:
    case GgufValueType::I64:
      return std::to_string(std::get<int64_t>(v.value));
    case GgufValueType::F32:
      return format_float_exact(static_cast<float>(std::get<double>(v.value)));
    case GgufValueType::F64: {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", std::get<double>(v.value));
      return buf;
    }
    case GgufValueType::BOOL:
      return std::get<bool>(v.value) ? "true" : "false";
    case GgufValueType::STRING: {
      const std::string& s = std::get<std::string>(v.value);
      return "\"" + (s.size() > 80 ? s.substr(0, 80) + "…" : s) + "\"";
    }
    case GgufValueType::ARRAY:
      break;
  }
  return "?";
}

}  // namespace

std::string format_value_summary(const GgufValue& value) {
  if (!value.is_array())
    return std::string(gguf_value_type_name(value.type)) + " " + scalar_text(value);
  const auto& elements = value.elements();
  std::string out = "[" + std::string(gguf_value_type_name(value.element_type)) + " x " +
                    std::to_string(elements.size()) + "]";
  for (size_t i = 0; i < elements.size() && i < 6; ++i) {
    out += (i ? ", " : " ") +
           (elements[i].is_array() ? std::string("[...]") : scalar_text(elements[i]));
  }
  if (elements.size() > 6) out += ", ...";
  return out;
}

std::string format_float_exact(float value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  // "-0" would parse back as the integer 0 in JSON readers; keep the sign of zero.
  if (value == 0.0f) return std::signbit(value) ? "-0.0" : "0";
  char buf[32];
  for (int precision = 6; precision <= 9; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, static_cast<double>(value));
    if (std::strtof(buf, nullptr) == value) break;
  }
  return buf;
}

}  // namespace v4::apps
