// The vocabulary as bytes, for structured-output token masks: a byte trie of the text tokens (one
// walk of the trie checks every token that shares a prefix) and, for each state of a JSON string
// body, what each token does there (so the mask inside a long string costs one table pass, not a
// walk of the whole vocabulary). Built once per served model; shared by every request.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/grammar/grammar_matcher.h"

namespace v4 {

// A token whose bytes, from some string-body state, close the string: the rest of its bytes
// go to whatever holds the string.
struct StringClosingToken {
  int32_t id = 0;
  uint16_t quote_offset = 0;  // index of the closing quote in the token's bytes
  uint16_t chars_before = 0;  // string characters the token adds before its quote
};

// Tokens from one string-body state. A string with room for k more characters allows the
// tokens of stay_bits_upto[min(k, kShortTokenChars)] plus those of long_tokens that fit.
struct StringBodyTable {
  static constexpr int16_t kShortTokenChars = 24;
  std::vector<int16_t> chars;  // by id: characters added staying inside; -1: not
  // [k]: bitset of the ids with 0 <= chars <= k, for k up to kShortTokenChars.
  std::vector<std::vector<uint64_t>> stay_bits_upto;
  std::vector<int32_t> long_tokens;         // ids with chars > kShortTokenChars
  std::vector<StringClosingToken> closing;  // by id
};

class TokenVocabulary {
 public:
  // `token_bytes[id]`: the bytes token id stands for. `text_token[id]`: false for special
  // (control) tokens, which never appear inside constrained text.
  TokenVocabulary(std::vector<std::string> token_bytes, const std::vector<bool>& text_token);

  size_t size() const { return token_bytes_.size(); }
  size_t words() const { return (size() + 63) / 64; }  // uint64 words of a token bitset
  std::string_view bytes(int32_t id) const { return token_bytes_[static_cast<size_t>(id)]; }
  bool is_text(int32_t id) const { return text_token_[static_cast<size_t>(id)]; }

  // The trie: node 0 is the root (the empty prefix).
  struct TrieNode {
    uint32_t first_edge = 0, edges = 0;    // into edge_bytes / edge_children
    uint32_t first_token = 0, tokens = 0;  // into node_tokens: ids whose bytes end here
  };
  const std::vector<TrieNode>& trie() const { return trie_; }
  uint8_t edge_byte(uint32_t edge) const { return edge_bytes_[edge]; }
  uint32_t edge_child(uint32_t edge) const { return edge_children_[edge]; }
  int32_t node_token(uint32_t index) const { return node_tokens_[index]; }

  const StringBodyTable& string_table(uint8_t sub) const { return string_tables_[sub]; }

  // Strict tools (model/grammar/dsml_tool_grammar.h): by UTF-8 state (raw_text_step's), the
  // bitset of the text tokens a RAW parameter value may take whole; and the text tokens that
  // end in "<" or "</", the only ones that may end a JSON parameter value and start its
  // closing tag.
  const std::vector<uint64_t>& raw_text_bits(uint8_t utf8) const { return raw_text_bits_[utf8]; }
  const std::vector<int32_t>& closing_tag_tokens() const { return closing_tag_tokens_; }

 private:
  void build_trie(const std::vector<bool>& text_token);
  void build_string_tables(const std::vector<bool>& text_token);
  void build_tool_tables(const std::vector<bool>& text_token);

  std::vector<std::string> token_bytes_;
  std::vector<bool> text_token_;
  std::vector<TrieNode> trie_;
  std::vector<uint8_t> edge_bytes_;
  std::vector<uint32_t> edge_children_;
  std::vector<int32_t> node_tokens_;
  std::vector<StringBodyTable> string_tables_;        // by string-body state
  std::vector<std::vector<uint64_t>> raw_text_bits_;  // by UTF-8 state
  std::vector<int32_t> closing_tag_tokens_;
};

}  // namespace v4
