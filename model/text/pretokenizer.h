// The "joyai-llm" (DeepSeek-V3) pre-tokenizer: three successive regex splits, each keeping both
// matches and the gaps between them as pieces (HF Split, behaviour Isolated). Spec §5.3.
//
// Bytes that are not well-formed UTF-8 never reach the regexes: each such byte becomes a piece of
// its own and the valid runs around it are split independently (the reference tokenizers take
// Unicode strings and have no defined behaviour for such input; this keeps every byte).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace v4 {

// The three patterns exactly as tokenizer.json's pre_tokenizer Split entries (spec §5.3).
extern const char* const kPretokenizerPatterns[3];

class Pretokenizer {
 public:
  // Compiles the patterns with PCRE2 (UTF + UCP, JIT when available).
  static Result<Pretokenizer> create();

  // Appends the pieces of `text` to `pieces`, in order; they cover `text` exactly.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;

 private:
  struct Impl;
  explicit Pretokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace v4
