// GPT-2 byte-level BPE over token ids: a piece's bytes start as single-byte tokens and adjacent
// pairs merge lowest rank first (leftmost on ties) until no ranked pair is left, as HF tokenizers'
// BPE model does. Spec §5.3 (tokenizer.ggml.merges: lower index = earlier merge).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace v4 {

using TokenId = int32_t;

class BpeModel {
 public:
  // `vocab` maps byte-level strings of ordinary tokens to ids; `merges` are "left right" pairs.
  // Every single-byte symbol must be in the vocabulary; a merge whose parts or result are not is
  // skipped (it could never fire).
  static Result<BpeModel> create(const std::unordered_map<std::string, TokenId>& vocab,
                                 const std::vector<std::string>& merges);

  BpeModel(BpeModel&& other) noexcept;
  BpeModel& operator=(BpeModel&& other) noexcept;

  // Appends the ids of one pre-tokenized piece (raw bytes) to `out`.
  void encode_piece(std::string_view piece, std::vector<TokenId>& out) const;

  size_t merge_count() const { return merges_.size(); }

 private:
  BpeModel() = default;
  struct Merge {
    int32_t rank;
    TokenId result;
  };
  static uint64_t pair_key(TokenId left, TokenId right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  void merge_symbols(std::string_view piece, std::vector<TokenId>& out) const;

  std::array<TokenId, 256> byte_tokens_{};
  std::unordered_map<uint64_t, Merge> merges_;
  // Pieces repeat a lot in natural text; remember recent results (bounded, cleared when full).
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<TokenId>> cache_;
};

}  // namespace v4
