// JSON text exactly as Python's `json.dumps(value, ensure_ascii=False)` writes it, because the
// official DeepSeek-V4 encoder embeds tool schemas and non-string tool arguments that way
// (spec §5.8): ", " and ": " separators, key order kept, floats as Python's repr, NaN/Infinity
// spelled out, and only '"', '\\' and control characters escaped.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace v4 {

using OrderedJson = nlohmann::ordered_json;

std::string python_json_dumps(const OrderedJson& value);

// Appends the JSON string literal of `text` (with quotes), escaped like json.dumps.
void append_python_json_string(std::string& out, std::string_view text);

// Python's repr() of a double ("1.0", "1e-05", "1e+16", "inf").
std::string python_float_repr(double value);

}  // namespace v4
