// Tokenizer assembly: added-token trie, pre-tokenizer, BPE and the id -> bytes table (spec §5.3).
#include "model/text/tokenizer.h"

#include <unordered_map>

#include "model/text/byte_level.h"

namespace v4 {
namespace {

// A byte trie over the added-token strings; each terminal remembers whether it needs permission.
class AddedTokenTrie {
 public:
  void insert(std::string_view text, TokenId id, bool control) {
    int32_t node = 0;
    for (char c : text) {
      const uint8_t byte = static_cast<uint8_t>(c);
      int32_t child = find_child(node, byte);
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_[node].children.push_back({byte, child});
        nodes_.push_back({});
      }
      node = child;
    }
    nodes_[node].token = id;
    nodes_[node].control = control;
    first_byte_[static_cast<uint8_t>(text.front())] = true;
  }

  bool may_start(uint8_t byte) const { return first_byte_[byte]; }

  // The longest allowed token starting at text[pos]: {length, id} or {0, -1}.
  std::pair<size_t, TokenId> longest_match(std::string_view text, size_t pos,
                                           bool allow_control) const {
    std::pair<size_t, TokenId> best{0, -1};
    int32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      node = find_child(node, static_cast<uint8_t>(text[i]));
      if (node < 0) break;
      const Node& n = nodes_[node];
      if (n.token >= 0 && (allow_control || !n.control)) best = {i + 1 - pos, n.token};
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;
    TokenId token = -1;
    bool control = false;
  };
  int32_t find_child(int32_t node, uint8_t byte) const {
    for (const auto& [b, child] : nodes_[node].children) {
      if (b == byte) return child;
    }
    return -1;
  }
  std::vector<Node> nodes_{Node{}};
  bool first_byte_[256] = {};
};

}  // namespace

struct Tokenizer::Impl {
  std::vector<std::string> tokens;
  std::vector<TokenType> types;
  std::vector<std::string> bytes;                       // decoded bytes per id
  std::unordered_map<std::string, TokenId> vocabulary;  // every token string -> id
  std::unordered_map<std::string, TokenId> added;       // control / user-defined text -> id
  AddedTokenTrie trie;
  Pretokenizer pretokenizer;
  BpeModel bpe;
  TokenId bos = -1;
  TokenId eos = -1;

  Impl(Pretokenizer p, BpeModel b) : pretokenizer(std::move(p)), bpe(std::move(b)) {}
};

Result<Tokenizer> Tokenizer::from_vocab(const TokenizerVocab& vocab) {
  const size_t n = vocab.tokens.size();
  if (n == 0) return Status::error("tokenizer has no tokens");
  if (!vocab.token_types.empty() && vocab.token_types.size() != n) {
    return Status::error("tokenizer has " + std::to_string(n) + " tokens but " +
                         std::to_string(vocab.token_types.size()) + " token types");
  }
  auto type_of = [&](size_t id) {
    return vocab.token_types.empty() ? TokenType::kNormal
                                     : static_cast<TokenType>(vocab.token_types[id]);
  };
  // BPE works on ordinary tokens only: an added token whose text happens to look like a
  // byte-level string must not be produced by merges (HF keeps added tokens out of the model).
  std::unordered_map<std::string, TokenId> ordinary;
  ordinary.reserve(n);
  for (size_t id = 0; id < n; ++id) {
    const TokenType t = type_of(id);
    if (t == TokenType::kNormal || t == TokenType::kByte || t == TokenType::kUnknown) {
      ordinary.try_emplace(vocab.tokens[id], static_cast<TokenId>(id));
    }
  }
  Result<BpeModel> bpe = BpeModel::create(ordinary, vocab.merges);
  if (!bpe) return bpe.status();
  Result<Pretokenizer> pretokenizer = Pretokenizer::create();
  if (!pretokenizer) return pretokenizer.status();

  auto impl = std::make_shared<Impl>(std::move(*pretokenizer), std::move(*bpe));
  impl->tokens = vocab.tokens;
  impl->types.resize(n);
  impl->bytes.resize(n);
  impl->vocabulary = std::move(ordinary);
  for (size_t id = 0; id < n; ++id) {
    const TokenType t = type_of(id);
    const std::string& text = vocab.tokens[id];
    impl->types[id] = t;
    if (t == TokenType::kControl || t == TokenType::kUserDefined) {
      if (text.empty()) return Status::error("added token " + std::to_string(id) + " is empty");
      impl->added.try_emplace(text, static_cast<TokenId>(id));
      impl->vocabulary.try_emplace(text, static_cast<TokenId>(id));
      impl->trie.insert(text, static_cast<TokenId>(id), t == TokenType::kControl);
      impl->bytes[id] = text;  // added tokens are stored as plain text
    } else if (t == TokenType::kUnused) {
      impl->bytes[id].clear();  // "[PAD<id>]" fillers stand for no text
    } else {
      // Like HF's ByteLevel decoder: a string outside the alphabet decodes as its own UTF-8.
      std::optional<std::string> decoded = byte_level_decode(text);
      impl->bytes[id] = decoded ? std::move(*decoded) : text;
    }
  }
  auto check_id = [&](TokenId id, const char* what) -> Status {
    if (id >= static_cast<TokenId>(n)) {
      return Status::error(std::string("tokenizer ") + what + " id " + std::to_string(id) +
                           " is outside the vocabulary of " + std::to_string(n));
    }
    return Status::ok();
  };
  if (Status s = check_id(vocab.bos_id, "BOS"); !s) return s;
  if (Status s = check_id(vocab.eos_id, "EOS"); !s) return s;
  impl->bos = vocab.bos_id;
  impl->eos = vocab.eos_id;
  return Tokenizer(std::move(impl));
}

void Tokenizer::encode_ordinary(std::string_view text, std::vector<TokenId>& out) const {
  if (text.empty()) return;
  std::vector<std::string_view> pieces;
  impl_->pretokenizer.split(text, pieces);
  for (std::string_view piece : pieces) impl_->bpe.encode_piece(piece, out);
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 1);
  size_t segment_start = 0;
  for (size_t pos = 0; pos < text.size();) {
    if (impl_->trie.may_start(static_cast<uint8_t>(text[pos]))) {
      auto [length, id] = impl_->trie.longest_match(text, pos, allow_special);
      if (length > 0) {
        encode_ordinary(text.substr(segment_start, pos - segment_start), out);
        out.push_back(id);
        pos += length;
        segment_start = pos;
        continue;
      }
    }
    ++pos;
  }
  encode_ordinary(text.substr(segment_start), out);
  return out;
}

std::string Tokenizer::decode(std::span<const TokenId> ids) const {
  std::string out;
  for (TokenId id : ids) out += token_bytes(id);
  return out;
}

std::string_view Tokenizer::token_bytes(TokenId id) const {
  if (!is_valid(id)) return {};
  return impl_->bytes[id];
}

std::optional<TokenId> Tokenizer::special_token_id(std::string_view text) const {
  auto it = impl_->added.find(std::string(text));
  if (it == impl_->added.end()) return std::nullopt;
  return it->second;
}

std::optional<TokenId> Tokenizer::token_id(std::string_view vocabulary_string) const {
  auto it = impl_->vocabulary.find(std::string(vocabulary_string));
  if (it == impl_->vocabulary.end()) return std::nullopt;
  return it->second;
}

const std::string& Tokenizer::token_string(TokenId id) const {
  static const std::string empty;
  return is_valid(id) ? impl_->tokens[id] : empty;
}

TokenType Tokenizer::token_type(TokenId id) const {
  return is_valid(id) ? impl_->types[id] : TokenType::kUnused;
}

size_t Tokenizer::vocab_size() const { return impl_->tokens.size(); }
TokenId Tokenizer::bos_id() const { return impl_->bos; }
TokenId Tokenizer::eos_id() const { return impl_->eos; }

}  // namespace v4
