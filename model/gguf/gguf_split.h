// Split GGUF sets (llama.cpp gguf-split convention, spec §5.1): parts named
// "<stem>-00001-of-00003.gguf", each a complete GGUF carrying split.no (u16, 0-based),
// split.count (u16) and split.tensors.count (i32); only the first part has the full metadata.
// Files in the wild are also named "<stem>.gguf-00001-of-00003": either such shards, or the
// plain byte chunks of one file (cut with `split`), which the reader maps back into one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace v4 {

inline constexpr std::string_view kGgufKeySplitNo = "split.no";
inline constexpr std::string_view kGgufKeySplitCount = "split.count";
inline constexpr std::string_view kGgufKeySplitTensorsCount = "split.tensors.count";
inline constexpr std::string_view kGgufKeyAlignment = "general.alignment";

// split.count is a u16 and part numbers are printed with five digits.
constexpr uint32_t kGgufMaxSplitCount = 65535;

enum class GgufSplitStyle {
  kGgufSplit,       // "<stem>-00001-of-00003.gguf" (llama.cpp)
  kAfterExtension,  // "<stem>.gguf-00001-of-00003"
};

struct GgufSplitName {
  std::string stem;  // path without "-0000i-of-0000N.gguf" (or, kAfterExtension, "-0000i-of-0000N")
  uint32_t part = 0;   // 1-based, as in the name
  uint32_t count = 0;  // number of parts
  GgufSplitStyle style = GgufSplitStyle::kGgufSplit;
};

// "<stem>-<part:05>-of-<count:05>.gguf"; `part` is 1-based. kAfterExtension: the stem (which
// ends in ".gguf") + "-<part:05>-of-<count:05>".
std::string gguf_split_path(std::string_view stem, uint32_t part, uint32_t count,
                            GgufSplitStyle style = GgufSplitStyle::kGgufSplit);

// Recognises a part name; nullopt for any other path (including part 0 or part > count).
std::optional<GgufSplitName> parse_gguf_split_path(std::string_view path);

// "dir/model.gguf" -> "dir/model": the stem the writer derives part names from.
std::string gguf_path_stem(std::string_view path);

}  // namespace v4
