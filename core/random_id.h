// Identifiers the API hands out ("chatcmpl-…", "call_…", "msg_…"): random, so that they are
// unique across requests and processes, but not secret (a per-thread Mersenne Twister seeded
// from std::random_device, not a cryptographic source).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace v4 {

inline constexpr std::string_view kHexDigits = "0123456789abcdef";
inline constexpr std::string_view kBase62Digits =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// `prefix` followed by `length` characters drawn uniformly from `alphabet` (not empty).
std::string random_id(std::string_view prefix, size_t length, std::string_view alphabet);

}  // namespace v4
