// The DeepSeek-V4 tokenizer: added-token (special) matching, the joyai-llm pre-tokenizer and GPT-2
// byte-level BPE, built from the GGUF tokenizer.ggml.* metadata. Spec §5.3.
//
// Added tokens follow HF tokenizers' rules: their strings are cut out of the text before
// pre-tokenization, leftmost match first and the longest one at that position. User-defined
// tokens (type 4) are always cut out; control tokens (type 3) only when the caller allows special
// tokens — the same split HF makes between non-special and special added tokens with
// `encode_special_tokens`, given the GGUF types llama.cpp's converter assigns. (HF skips a
// forbidden special match as a whole; we skip it by not matching it. The two agree as long as no
// user-defined token starts inside a control token's text, which holds for the V4 vocabulary.)
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/text/bpe.h"
#include "model/text/pretokenizer.h"

namespace v4 {

class GgufFile;

// tokenizer.ggml.token_type values (llama.cpp's gguf TokenType).
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// The tokenizer metadata of a GGUF file, as plain vectors (tests build it without a file).
struct TokenizerVocab {
  std::vector<std::string> tokens;   // by id; ordinary tokens in byte-level spelling
  std::vector<int32_t> token_types;  // by id; empty means all normal
  std::vector<std::string> merges;   // "left right", by rank
  TokenId bos_id = -1;
  TokenId eos_id = -1;
};

class Tokenizer {
 public:
  static Result<Tokenizer> from_vocab(const TokenizerVocab& vocab);
  // Reads tokenizer.ggml.{model,tokens,token_type,merges,bos_token_id,eos_token_id}.
  static Result<Tokenizer> from_gguf(const GgufFile& file);

  // Token ids of `text` (any bytes; see Pretokenizer for bytes that are not UTF-8). Control
  // token strings are honoured only when `allow_special` is set; otherwise they are plain text.
  std::vector<TokenId> encode(std::string_view text, bool allow_special = false) const;

  // The bytes the ids stand for, concatenated; ids out of range and unused slots add nothing.
  std::string decode(std::span<const TokenId> ids) const;
  // The bytes of one token (may be a partial UTF-8 sequence).
  std::string_view token_bytes(TokenId id) const;

  // The id of an added token (control or user-defined) by its text, e.g. "<｜User｜>".
  std::optional<TokenId> special_token_id(std::string_view text) const;
  // The id of any token by its vocabulary string (byte-level spelling for ordinary tokens).
  std::optional<TokenId> token_id(std::string_view vocabulary_string) const;

  const std::string& token_string(TokenId id) const;
  TokenType token_type(TokenId id) const;
  size_t vocab_size() const;
  TokenId bos_id() const;
  TokenId eos_id() const;
  bool is_valid(TokenId id) const { return id >= 0 && static_cast<size_t>(id) < vocab_size(); }

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  void encode_ordinary(std::string_view text, std::vector<TokenId>& out) const;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace v4
