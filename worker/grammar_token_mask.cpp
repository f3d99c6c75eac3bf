#include "worker/grammar_token_mask.h"

#include <algorithm>

namespace v4 {
namespace {

void set_bit(std::vector<uint64_t>& bits, int32_t id) {
  bits[static_cast<size_t>(id) / 64] |= uint64_t{1} << (static_cast<size_t>(id) % 64);
}

// Feeds bytes to every thread; false when none survives.
bool feed(const JsonGrammar& grammar, std::vector<GrammarThread>& threads, std::string_view bytes,
          std::vector<GrammarThread>& scratch) {
  for (char c : bytes) {
    scratch.clear();
    for (GrammarThread& t : threads)
      advance_thread(grammar, std::move(t), static_cast<uint8_t>(c), scratch);
    std::swap(threads, scratch);
    if (threads.empty()) return false;
  }
  return true;
}

// Depth-first walk of the vocabulary trie: a subtree is entered only while some thread
// survives its prefix, so tokens sharing a dead prefix cost one check.
void walk_trie(const JsonGrammar& grammar, const TokenVocabulary& vocabulary, uint32_t node,
               const std::vector<GrammarThread>& threads, std::vector<uint64_t>& bits) {
  const TokenVocabulary::TrieNode& n = vocabulary.trie()[node];
  std::vector<GrammarThread> next;
  for (uint32_t e = n.first_edge; e < n.first_edge + n.edges; ++e) {
    next.clear();
    const uint8_t b = vocabulary.edge_byte(e);
    for (const GrammarThread& t : threads) advance_thread(grammar, t, b, next);
    if (next.empty()) continue;
    const uint32_t child = vocabulary.edge_child(e);
    const TokenVocabulary::TrieNode& c = vocabulary.trie()[child];
    for (uint32_t k = c.first_token; k < c.first_token + c.tokens; ++k)
      set_bit(bits, vocabulary.node_token(k));
    if (c.edges) walk_trie(grammar, vocabulary, child, next, bits);
  }
}

// Inside a string body the tables answer for tokens that stay inside; only tokens that close
// the string are walked (their bytes after the quote belong to the enclosing value).
void string_body_bits(const JsonGrammar& grammar, const TokenVocabulary& vocabulary,
                      const GrammarThread& thread, std::vector<uint64_t>& bits) {
  const GrammarFrame& f = thread.back();
  const GrammarNode& node = grammar_node(grammar, f.node);
  const StringBodyTable& table = vocabulary.string_table(f.sub);
  const uint64_t room = uint64_t{node.max_length} - f.count;
  const auto& short_bits = table.stay_bits_upto[static_cast<size_t>(
      std::min<uint64_t>(room, StringBodyTable::kShortTokenChars))];
  for (size_t w = 0; w < bits.size(); ++w) bits[w] |= short_bits[w];
  for (int32_t id : table.long_tokens)
    if (static_cast<uint64_t>(table.chars[static_cast<size_t>(id)]) <= room) set_bit(bits, id);
  GrammarThread closed = thread;
  closed.pop_back();
  std::vector<GrammarThread> threads, scratch;
  for (const StringClosingToken& token : table.closing) {
    if (token.chars_before > room || f.count + token.chars_before < node.min_length) continue;
    threads.assign(1, closed);
    const std::string_view rest = vocabulary.bytes(token.id).substr(token.quote_offset + 1u);
    if (feed(grammar, threads, rest, scratch)) set_bit(bits, token.id);
  }
}

}  // namespace

void allowed_token_bits(const GrammarMatcher& matcher, const TokenVocabulary& vocabulary,
                        std::vector<uint64_t>& bits) {
  bits.assign(vocabulary.words(), 0);
  const JsonGrammar& grammar = matcher.grammar();
  // A token is allowed when some thread takes it, so the mask is the union over threads.
  for (const GrammarThread& thread : matcher.threads()) {
    if (open_string_body(grammar, thread)) {
      string_body_bits(grammar, vocabulary, thread, bits);
    } else {
      walk_trie(grammar, vocabulary, 0, {thread}, bits);
    }
  }
}

void allowed_token_bits_by_scan(const GrammarMatcher& matcher, const TokenVocabulary& vocabulary,
                                std::vector<uint64_t>& bits) {
  bits.assign(vocabulary.words(), 0);
  for (size_t id = 0; id < vocabulary.size(); ++id) {
    const std::string_view text = vocabulary.bytes(static_cast<int32_t>(id));
    if (text.empty() || !vocabulary.is_text(static_cast<int32_t>(id))) continue;
    GrammarMatcher copy = matcher;
    if (copy.advance(text)) set_bit(bits, static_cast<int32_t>(id));
  }
}

}  // namespace v4
