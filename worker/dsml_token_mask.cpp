#include "worker/dsml_token_mask.h"

#include "worker/grammar_token_mask.h"

namespace v4 {
namespace {

void set_bit(std::vector<uint64_t>& bits, int32_t id) {
  bits[static_cast<size_t>(id) / 64] |= uint64_t{1} << (static_cast<size_t>(id) % 64);
}

// Depth-first walk of the vocabulary trie with copies of the matcher: a subtree is entered only
// while its prefix is allowed, so in a tag (one byte allowed at a time) the walk is a path.
void walk_trie(const TokenVocabulary& vocabulary, uint32_t node, const DsmlToolMatcher& matcher,
               std::vector<uint64_t>& bits) {
  const TokenVocabulary::TrieNode& n = vocabulary.trie()[node];
  for (uint32_t e = n.first_edge; e < n.first_edge + n.edges; ++e) {
    DsmlToolMatcher next = matcher;
    if (!next.step(vocabulary.edge_byte(e))) continue;
    const uint32_t child = vocabulary.edge_child(e);
    const TokenVocabulary::TrieNode& c = vocabulary.trie()[child];
    for (uint32_t k = c.first_token; k < c.first_token + c.tokens; ++k)
      set_bit(bits, vocabulary.node_token(k));
    if (c.edges) walk_trie(vocabulary, child, next, bits);
  }
}

// Inside a JSON value: tokens the value takes whole, and tokens that finish it and start the
// closing tag ("...<" or "...</": after "</" only the marker may come).
void json_value_bits(const GrammarMatcher& value, const TokenVocabulary& vocabulary,
                     std::vector<uint64_t>& bits) {
  allowed_token_bits(value, vocabulary, bits);
  for (int32_t id : vocabulary.closing_tag_tokens()) {
    const std::string_view text = vocabulary.bytes(id);
    const size_t lt = text.ends_with("</") ? text.size() - 2 : text.size() - 1;
    GrammarMatcher copy = value;
    if (copy.advance(text.substr(0, lt)) && copy.accepting()) set_bit(bits, id);
  }
}

}  // namespace

bool dsml_allowed_token_bits(const DsmlToolMatcher& matcher, const TokenVocabulary& vocabulary,
                             std::vector<uint64_t>& bits) {
  if (matcher.free()) return false;
  bits.assign(vocabulary.words(), 0);
  switch (matcher.phase()) {
    case DsmlToolMatcher::Phase::kRaw:
      bits = vocabulary.raw_text_bits(matcher.raw_utf8_state());
      break;
    case DsmlToolMatcher::Phase::kJson:
      json_value_bits(*matcher.json_value(), vocabulary, bits);
      break;
    case DsmlToolMatcher::Phase::kDone:
      break;
    default:
      walk_trie(vocabulary, 0, matcher, bits);
      break;
  }
  const int32_t marker = matcher.grammar().marker_token;
  if (matcher.marker_allowed() && marker >= 0 && static_cast<size_t>(marker) < vocabulary.size())
    set_bit(bits, marker);
  return true;
}

void dsml_allowed_token_bits_by_scan(const DsmlToolMatcher& matcher,
                                     const TokenVocabulary& vocabulary,
                                     std::vector<uint64_t>& bits) {
  bits.assign(vocabulary.words(), 0);
  for (size_t id = 0; id < vocabulary.size(); ++id) {
    const auto token = static_cast<int32_t>(id);
    DsmlToolMatcher copy = matcher;
    const bool text = vocabulary.is_text(token);
    if (text && vocabulary.bytes(token).empty()) continue;
    if (copy.advance_token(token, vocabulary.bytes(token), text)) set_bit(bits, token);
  }
}

}  // namespace v4
