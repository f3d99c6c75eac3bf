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

std::string gguf_split_path(std::string_view stem, uint32_t part, uint32_t count,
                            GgufSplitStyle style) {
  char suffix[48];
  std::snprintf(suffix, sizeof suffix, "-%05u-of-%05u%s", part, count,
                style == GgufSplitStyle::kGgufSplit ? ".gguf" : "");
  return std::string(stem) + suffix;
}

std::optional<GgufSplitName> parse_gguf_split_path(std::string_view path) {
  // "-00001-of-00003" is 1 + 5 + 4 + 5 characters; ".gguf" follows it or comes before it.
  constexpr size_t kNumbers = 1 + kDigits + 4 + kDigits;
  const bool extension_last = path.ends_with(kExtension);
  const std::string_view body =
      extension_last ? path.substr(0, path.size() - kExtension.size()) : path;
  if (body.size() < kNumbers) return std::nullopt;
  const std::string_view numbers = body.substr(body.size() - kNumbers);
  if (numbers[0] != '-' || numbers.substr(1 + kDigits, 4) != "-of-") return std::nullopt;
  const std::optional<uint32_t> part = parse_five_digits(numbers.substr(1, kDigits));
  const std::optional<uint32_t> count = parse_five_digits(numbers.substr(1 + kDigits + 4, kDigits));
  if (!part || !count || *part == 0 || *part > *count) return std::nullopt;
  const std::string_view stem = body.substr(0, body.size() - kNumbers);
  if (!extension_last && !stem.ends_with(kExtension)) return std::nullopt;
  return GgufSplitName{
      std::string(stem), *part, *count,
      extension_last ? GgufSplitStyle::kGgufSplit : GgufSplitStyle::kAfterExtension};
}

std::string gguf_path_stem(std::string_view path) {
  if (path.ends_with(kExtension)) path.remove_suffix(kExtension.size());
  return std::string(path);
}

}  // namespace v4
