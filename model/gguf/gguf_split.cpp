#include "model/gguf/gguf_split.h"

#include <cstdio>

namespace v4 {
namespace {

constexpr std::string_view kExtension = ".gguf";
constexpr size_t kDigits = 5;

// Parses exactly five decimal digits.
std::optional<uint32_t> parse_five_digits(std::string_view text) {
  if (text.size() != kDigits) return std::nullopt;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  return value;
}

}  // namespace

std::string gguf_split_path(std::string_view stem, uint32_t part, uint32_t count) {
  char suffix[48];
  std::snprintf(suffix, sizeof suffix, "-%05u-of-%05u.gguf", part, count);
  return std::string(stem) + suffix;
}

std::optional<GgufSplitName> parse_gguf_split_path(std::string_view path) {
  // "-00001-of-00003.gguf" is 1 + 5 + 4 + 5 + 5 characters.
  constexpr size_t kSuffix = 1 + kDigits + 4 + kDigits + kExtension.size();
  if (path.size() < kSuffix || !path.ends_with(kExtension)) return std::nullopt;
  const std::string_view suffix = path.substr(path.size() - kSuffix);
  if (suffix[0] != '-' || suffix.substr(1 + kDigits, 4) != "-of-") return std::nullopt;
  const std::optional<uint32_t> part = parse_five_digits(suffix.substr(1, kDigits));
  const std::optional<uint32_t> count = parse_five_digits(suffix.substr(1 + kDigits + 4, kDigits));
  if (!part || !count || *part == 0 || *part > *count) return std::nullopt;
  return GgufSplitName{std::string(path.substr(0, path.size() - kSuffix)), *part, *count};
}

std::string gguf_path_stem(std::string_view path) {
  if (path.ends_with(kExtension)) path.remove_suffix(kExtension.size());
  return std::string(path);
}

}  // namespace v4
