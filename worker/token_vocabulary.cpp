#include "worker/token_vocabulary.h"

#include <algorithm>
#include <numeric>

#include "model/grammar/dsml_tool_matcher.h"

namespace v4 {

TokenVocabulary::TokenVocabulary(std::vector<std::string> token_bytes,
                                 const std::vector<bool>& text_token)
    : token_bytes_(std::move(token_bytes)), text_token_(text_token) {
  text_token_.resize(token_bytes_.size(), false);
  build_trie(text_token_);
  build_string_tables(text_token_);
  build_tool_tables(text_token_);
}

// Tokens sorted by bytes share prefixes in runs, so each trie node is a range of the sorted
// order: its tokens of exactly `depth` bytes end there, the rest split by their next byte.
void TokenVocabulary::build_trie(const std::vector<bool>& text_token) {
  std::vector<int32_t> order;
  for (size_t id = 0; id < token_bytes_.size(); ++id)
    if (text_token[id] && !token_bytes_[id].empty()) order.push_back(static_cast<int32_t>(id));
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return bytes(a) < bytes(b); });
  struct Pending {
    uint32_t node, begin, end, depth;
  };
  trie_.push_back({});
  std::vector<Pending> stack{{0, 0, static_cast<uint32_t>(order.size()), 0}};
  while (!stack.empty()) {
    const Pending p = stack.back();
    stack.pop_back();
    uint32_t i = p.begin;
    trie_[p.node].first_token = static_cast<uint32_t>(node_tokens_.size());
    for (; i < p.end && bytes(order[i]).size() == p.depth; ++i) node_tokens_.push_back(order[i]);
    trie_[p.node].tokens = static_cast<uint32_t>(node_tokens_.size()) - trie_[p.node].first_token;
    trie_[p.node].first_edge = static_cast<uint32_t>(edge_bytes_.size());
    // Children's edges sit together; each child's own subtree is filled in later.
    while (i < p.end) {
      const uint8_t b = static_cast<uint8_t>(bytes(order[i])[p.depth]);
      uint32_t j = i;
      while (j < p.end && static_cast<uint8_t>(bytes(order[j])[p.depth]) == b) ++j;
      const auto child = static_cast<uint32_t>(trie_.size());
      trie_.push_back({});
      edge_bytes_.push_back(b);
      edge_children_.push_back(child);
      stack.push_back({child, i, j, p.depth + 1});
      i = j;
    }
    trie_[p.node].edges = static_cast<uint32_t>(edge_bytes_.size()) - trie_[p.node].first_edge;
  }
}

void TokenVocabulary::build_string_tables(const std::vector<bool>& text_token) {
  string_tables_.resize(kStringBodyStates);
  for (uint8_t start = 0; start < kStringBodyStates; ++start) {
    StringBodyTable& table = string_tables_[start];
    table.chars.assign(size(), -1);
    table.stay_bits_upto.assign(StringBodyTable::kShortTokenChars + 1,
                                std::vector<uint64_t>(words(), 0));
    for (size_t id = 0; id < size(); ++id) {
      if (!text_token[id] || token_bytes_[id].empty()) continue;
      const std::string_view text = token_bytes_[id];
      uint8_t sub = start;
      int chars = 0;
      bool stayed = true;
      for (size_t k = 0; k < text.size() && stayed; ++k) {
        bool new_char = false;
        const StringByte r = string_body_step(sub, static_cast<uint8_t>(text[k]), new_char);
        chars += new_char;
        if (r == StringByte::kClose && k < 0xFFFF) {
          table.closing.push_back(
              {static_cast<int32_t>(id), static_cast<uint16_t>(k), static_cast<uint16_t>(chars)});
        }
        stayed = r == StringByte::kStay;
      }
      if (!stayed) continue;
      table.chars[id] = static_cast<int16_t>(std::min(chars, 0x7FFF));
      if (table.chars[id] > StringBodyTable::kShortTokenChars) {
        table.long_tokens.push_back(static_cast<int32_t>(id));
        continue;
      }
      for (int k = table.chars[id]; k <= StringBodyTable::kShortTokenChars; ++k)
        table.stay_bits_upto[static_cast<size_t>(k)][id / 64] |= uint64_t{1} << (id % 64);
    }
  }
}

void TokenVocabulary::build_tool_tables(const std::vector<bool>& text_token) {
  raw_text_bits_.assign(kStringBodyStates, std::vector<uint64_t>(words(), 0));
  for (uint8_t start = 0; start < kStringBodyStates; ++start) {
    if (start != 0 && start < 10) continue;  // not UTF-8 states
    for (size_t id = 0; id < size(); ++id) {
      if (!text_token[id] || token_bytes_[id].empty()) continue;
      uint8_t utf8 = start;
      bool ok = true;
      for (char c : token_bytes_[id]) ok = ok && raw_text_step(utf8, static_cast<uint8_t>(c));
      if (ok) raw_text_bits_[start][id / 64] |= uint64_t{1} << (id % 64);
    }
  }
  for (size_t id = 0; id < size(); ++id) {
    const std::string_view text = token_bytes_[id];
    if (text_token[id] && (text.ends_with('<') || text.ends_with("</")))
      closing_tag_tokens_.push_back(static_cast<int32_t>(id));
  }
}

}  // namespace v4
