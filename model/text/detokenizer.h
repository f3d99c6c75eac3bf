// Streaming text out of generated token ids: tokens end in the middle of UTF-8 sequences (a
// CJK character or an emoji is often split over byte-level tokens), so bytes are held back until
// the sequence they start is complete. Spec §5.3 (decode: ids -> bytes).
//
// Guarantee: the concatenation of every chunk returned by push()/finish() equals the one-shot
// decode of all ids with ill-formed sequences replaced by U+FFFD — one per maximal ill-formed
// subpart, as Python's `bytes.decode("utf-8", "replace")` does. Nothing is lost, repeated or
// emitted as a broken sequence.
#pragma once

#include <string>
#include <string_view>

#include "model/text/tokenizer.h"

namespace v4 {

// Incremental UTF-8 sanitiser: bytes in, well-formed UTF-8 out.
class Utf8Stream {
 public:
  // Appends bytes; returns the text that is now complete (possibly empty).
  std::string push(std::string_view bytes);
  // Returns what is left, an incomplete tail becoming U+FFFD.
  std::string finish();
  bool has_pending() const { return !pending_.empty(); }

 private:
  std::string drain(bool final);
  std::string pending_;
};

// Replaces ill-formed UTF-8 like Utf8Stream does in one go.
std::string utf8_replace_invalid(std::string_view bytes);

class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  // Text completed by this token (possibly empty).
  std::string push(TokenId id) { return stream_.push(tokenizer_.token_bytes(id)); }
  std::string finish() { return stream_.finish(); }

 private:
  const Tokenizer& tokenizer_;
  Utf8Stream stream_;
};

}  // namespace v4
