// Text forms of GGUF values and sizes for the CLI.
#pragma once

#include <cstdint>
#include <string>

#include "model/gguf/gguf_value.h"

namespace v4::apps {

std::string format_bytes(uint64_t bytes);
// Scalars in full; arrays as "[TYPE x N] first, elements, ..."; strings quoted, cut at 80 chars.
std::string format_value_summary(const GgufValue& value);
// Shortest decimal that parses back to the same float32; NaN/Infinity as Python's json writes.
std::string format_float_exact(float value);

}  // namespace v4::apps
