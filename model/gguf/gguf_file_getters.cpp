// GgufFile's typed metadata getters. Writers disagree on integer widths (ds4 reads
// context_length as u64, llama.cpp writes u32; compress_ratios is u32 or i32, spec §5.2), so the
// integer getters accept every integer type whose value fits.
#include <limits>

#include "model/gguf/gguf_cursor.h"
#include "model/gguf/gguf_reader.h"

namespace v4 {
namespace {

bool is_float(GgufValueType type) {
  return type == GgufValueType::F32 || type == GgufValueType::F64;
}

std::string type_text(const GgufValue& value) {
  std::string text = gguf_value_type_name(value.type);
  if (value.is_array()) text += std::string(" of ") + gguf_value_type_name(value.element_type);
  return text;
}

// Shapes every getter failure: "<file>: metadata key '<key>' <problem>".
class KeyErrors {
 public:
  KeyErrors(const GgufFile& file, std::string_view key) : file_(file), key_(key) {}

  Status fail(const std::string& problem) const {
    return Status::error(gguf_path_text(file_.paths().front()) + ": metadata key " +
                         gguf_quoted(key_) + " " + problem);
  }

  // The entry, or the error saying why it is missing or of another kind.
  Result<const GgufValue*> lookup(bool (*accepts)(const GgufValue&), const char* expected) const {
    const GgufValue* value = file_.find(key_);
    if (value == nullptr) return fail("is missing");
    if (!accepts(*value)) return fail("has type " + type_text(*value) + ", expected " + expected);
    return value;
  }

 private:
  const GgufFile& file_;
  std::string_view key_;
};

Result<int64_t> to_int(const GgufValue& value, const KeyErrors& errors) {
  if (const auto* i = std::get_if<int64_t>(&value.value)) return *i;
  const uint64_t u = std::get<uint64_t>(value.value);
  if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return errors.fail("value " + std::to_string(u) + " does not fit in an i64");
  }
  return static_cast<int64_t>(u);
}

template <class T, class Convert>
Result<std::vector<T>> convert_elements(const GgufValue& array, Convert convert) {
  std::vector<T> out;
  out.reserve(array.elements().size());
  for (const GgufValue& element : array.elements()) {
    Result<T> item = convert(element);
    if (!item) return item.status();
    out.push_back(std::move(item).value());
  }
  return out;
}

}  // namespace

Result<uint64_t> GgufFile::get_uint(std::string_view key) const {
  const KeyErrors errors(*this, key);
  auto found = errors.lookup([](const GgufValue& v) { return gguf_value_type_is_integer(v.type); },
                             "an integer");
  if (!found) return found.status();
  const GgufValue& value = **found;
  if (const auto* u = std::get_if<uint64_t>(&value.value)) return *u;
  const int64_t i = std::get<int64_t>(value.value);
  if (i < 0) return errors.fail("value " + std::to_string(i) + " is negative");
  return static_cast<uint64_t>(i);
}

Result<int64_t> GgufFile::get_int(std::string_view key) const {
  const KeyErrors errors(*this, key);
  auto found = errors.lookup([](const GgufValue& v) { return gguf_value_type_is_integer(v.type); },
                             "an integer");
  if (!found) return found.status();
  return to_int(**found, errors);
}

Result<double> GgufFile::get_float(std::string_view key) const {
  const KeyErrors errors(*this, key);
  auto found = errors.lookup([](const GgufValue& v) { return is_float(v.type); }, "F32 or F64");
  if (!found) return found.status();
  return std::get<double>((*found)->value);
}

Result<bool> GgufFile::get_bool(std::string_view key) const {
  const KeyErrors errors(*this, key);
  auto found =
      errors.lookup([](const GgufValue& v) { return v.type == GgufValueType::BOOL; }, "BOOL");
  if (!found) return found.status();
  return std::get<bool>((*found)->value);
}

Result<std::string> GgufFile::get_string(std::string_view key) const {
  const KeyErrors errors(*this, key);
  auto found =
      errors.lookup([](const GgufValue& v) { return v.type == GgufValueType::STRING; }, "STRING");
  if (!found) return found.status();
  return std::get<std::string>((*found)->value);
}

Result<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  const KeyErrors errors(*this, key);
  auto found = errors.lookup(
      [](const GgufValue& v) { return v.is_array() && gguf_value_type_is_integer(v.element_type); },
      "an ARRAY of integers");
  if (!found) return found.status();
  return convert_elements<int64_t>(**found, [&](const GgufValue& e) { return to_int(e, errors); });
}

Result<std::vector<double>> GgufFile::get_float_array(std::string_view key) const {
  const KeyErrors errors(*this, key);
  auto found =
      errors.lookup([](const GgufValue& v) { return v.is_array() && is_float(v.element_type); },
                    "an ARRAY of F32 or F64");
  if (!found) return found.status();
  return convert_elements<double>(
      **found, [](const GgufValue& e) { return Result<double>(std::get<double>(e.value)); });
}

Result<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  const KeyErrors errors(*this, key);
  auto found = errors.lookup(
      [](const GgufValue& v) { return v.is_array() && v.element_type == GgufValueType::STRING; },
      "an ARRAY of STRING");
  if (!found) return found.status();
  return convert_elements<std::string>(**found, [](const GgufValue& e) {
    return Result<std::string>(std::get<std::string>(e.value));
  });
}

}  // namespace v4
