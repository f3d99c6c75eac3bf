// Typed request members with OpenAI-style error messages.
#include "router/openai/openai_request_reader.h"

#include <cmath>
#include <cstdio>
#include <optional>

namespace v4::router {
namespace {

std::string quoted(const std::string& key) { return "'" + key + "'"; }

bool integral(const RequestJson& value) {
  if (value.is_number_integer()) return true;
  if (!value.is_number_float()) return false;
  const double d = value.get<double>();
  return std::isfinite(d) && std::floor(d) == d;
}

// The value of an integral JSON number, or nothing when it is outside int64 (1e30 must be
// refused by the range check, never clamped into range).
std::optional<int64_t> to_int64(const RequestJson& value) {
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  const double d = value.get<double>();
  // 2^63 is exact in a double; every integral double in [-2^63, 2^63) fits.
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return std::nullopt;
  return static_cast<int64_t>(d);
}

std::string got_text(const RequestJson& value) {
  if (value.is_number()) return number_text(value.get<double>());
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  return json_type_name(value);
}

}  // namespace

std::string json_type_name(const RequestJson& value) {
  switch (value.type()) {
    case RequestJson::value_t::null:
      return "null";
    case RequestJson::value_t::boolean:
      return "a boolean";
    case RequestJson::value_t::string:
      return "a string";
    case RequestJson::value_t::number_integer:
    case RequestJson::value_t::number_unsigned:
      return "an integer";
    case RequestJson::value_t::number_float:
      return "a number";
    case RequestJson::value_t::object:
      return "an object";
    case RequestJson::value_t::array:
      return "an array";
    default:
      return "an unsupported value";
  }
}

std::string number_text(double value) {
  char buffer[32];
  if (std::floor(value) == value && std::fabs(value) < 1e15) {
    std::snprintf(buffer, sizeof buffer, "%.0f", value);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.6g", value);
  }
  return buffer;
}

ApiError type_error(const std::string& key, const std::string& expected, const RequestJson& got) {
  return invalid_request(quoted(key) + " must be " + expected + ", got " + json_type_name(got),
                         key);
}

const RequestJson* RequestReader::find(const char* key) const {
  auto it = body_.find(key);
  if (it == body_.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<ApiError> RequestReader::boolean(const char* key, bool& out) const {
  const RequestJson* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_boolean()) return type_error(key, "a boolean", *value);
  out = value->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> RequestReader::string(const char* key, std::string& out) const {
  const RequestJson* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_string()) return type_error(key, "a string", *value);
  out = value->get<std::string>();
  return std::nullopt;
}

std::optional<ApiError> RequestReader::integer(const char* key, int64_t low, int64_t high,
                                               std::optional<int64_t>& out) const {
  const RequestJson* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!integral(*value)) return type_error(key, "an integer", *value);
  const std::optional<int64_t> v = to_int64(*value);
  if (!v || *v < low || *v > high) {
    const std::string bounds =
        high != INT64_MAX  ? "between " + std::to_string(low) + " and " + std::to_string(high)
        : low != INT64_MIN ? "at least " + std::to_string(low)
                           : "a 64-bit integer";
    return invalid_request(quoted(key) + " must be " + bounds + ", got " + got_text(*value), key);
  }
  out = *v;
  return std::nullopt;
}

std::optional<ApiError> RequestReader::number(const char* key, Range range, float& out) const {
  const RequestJson* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number()) return type_error(key, "a number", *value);
  const double v = value->get<double>();
  // The check is made on the float the sampler gets too: 1e-50 for top_p would become 0, and
  // 1e300 for repetition_penalty infinity.
  const float f = static_cast<float>(v);
  auto in_range = [&](double x) {
    return (range.low_open ? x > range.low : x >= range.low) && x <= range.high;
  };
  if (!in_range(v) || !in_range(f) || !std::isfinite(f)) {
    const std::string low = number_text(range.low), high = number_text(range.high);
    const std::string bounds =
        std::isinf(range.high) ? (range.low_open ? "greater than " + low : "at least " + low)
                               : (range.low_open ? "greater than " + low + " and at most " + high
                                                 : "between " + low + " and " + high);
    return invalid_request(quoted(key) + " must be " + bounds + ", got " + got_text(*value), key);
  }
  out = f;
  return std::nullopt;
}

std::optional<ApiError> RequestReader::strings(const char* key, size_t max_items,
                                               std::vector<std::string>& out) const {
  const RequestJson* value = find(key);
  if (value == nullptr) return std::nullopt;
  std::vector<std::string> items;
  if (value->is_string()) {
    items.push_back(value->get<std::string>());
  } else if (value->is_array()) {
    if (value->size() > max_items) {
      return invalid_request(quoted(key) + " must have at most " + std::to_string(max_items) +
                                 " items, got " + std::to_string(value->size()),
                             key);
    }
    for (const RequestJson& item : *value) {
      if (!item.is_string()) return type_error(key, "a string or an array of strings", item);
      items.push_back(item.get<std::string>());
    }
  } else {
    return type_error(key, "a string or an array of strings", *value);
  }
  for (const std::string& item : items) {
    if (item.empty()) return invalid_request(quoted(key) + " must not contain empty strings", key);
  }
  out = std::move(items);
  return std::nullopt;
}

std::optional<ApiError> RequestReader::token_ids(const char* key, size_t vocab_size,
                                                 std::vector<int32_t>& out) const {
  const RequestJson* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_array()) return type_error(key, "an array of token ids", *value);
  std::vector<int32_t> ids;
  for (const RequestJson& item : *value) {
    if (!integral(item)) return type_error(key, "an array of token ids", item);
    const std::optional<int64_t> id = to_int64(item);
    if (!id || *id < 0 || static_cast<uint64_t>(*id) >= vocab_size) {
      return invalid_request(quoted(key) + " contains token id " + got_text(item) +
                                 ", outside the vocabulary [0, " + std::to_string(vocab_size) + ")",
                             key);
    }
    ids.push_back(static_cast<int32_t>(*id));
  }
  out = std::move(ids);
  return std::nullopt;
}

}  // namespace v4::router
