// Byte-level BPE (spec §5.3), the priority-queue formulation of HF tokenizers' `Word::merge_all`.
#include "model/text/bpe.h"

#include <queue>

#include "model/text/byte_level.h"

namespace v4 {
namespace {

constexpr size_t kCacheLimit = 1 << 16;
constexpr size_t kCacheMaxPieceBytes = 256;

}  // namespace

BpeModel::BpeModel(BpeModel&& other) noexcept
    : byte_tokens_(other.byte_tokens_),
      merges_(std::move(other.merges_)),
      cache_(std::move(other.cache_)) {}

BpeModel& BpeModel::operator=(BpeModel&& other) noexcept {
  byte_tokens_ = other.byte_tokens_;
  merges_ = std::move(other.merges_);
  cache_ = std::move(other.cache_);
  return *this;
}

Result<BpeModel> BpeModel::create(const std::unordered_map<std::string, TokenId>& vocab,
                                  const std::vector<std::string>& merges) {
  BpeModel model;
  const auto& symbols = byte_level_symbols();
  for (int b = 0; b < 256; ++b) {
    auto it = vocab.find(symbols[b]);
    if (it == vocab.end()) {
      return Status::error("tokenizer vocabulary lacks the byte-level symbol for byte " +
                           std::to_string(b));
    }
    model.byte_tokens_[b] = it->second;
  }
  model.merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& merge = merges[rank];
    const size_t space = merge.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 >= merge.size()) {
      return Status::error("tokenizer merge " + std::to_string(rank) +
                           " is not \"left right\": " + merge);
    }
    const std::string left = merge.substr(0, space);
    const std::string right = merge.substr(space + 1);
    auto l = vocab.find(left), r = vocab.find(right), m = vocab.find(left + right);
    if (l == vocab.end() || r == vocab.end() || m == vocab.end()) continue;
    // A repeated pair keeps its first (lowest) rank.
    model.merges_.try_emplace(pair_key(l->second, r->second),
                              Merge{static_cast<int32_t>(rank), m->second});
  }
  return model;
}

void BpeModel::merge_symbols(std::string_view piece, std::vector<TokenId>& out) const {
  struct Symbol {
    TokenId id;
    int32_t prev;
    int32_t next;
    bool removed;
  };
  struct Candidate {
    int32_t rank;
    int32_t pos;
    TokenId result;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  const int32_t n = static_cast<int32_t>(piece.size());
  std::vector<Symbol> symbols(n);
  for (int32_t i = 0; i < n; ++i) {
    symbols[i] = {byte_tokens_[static_cast<uint8_t>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1,
                  false};
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push_pair = [&](int32_t pos) {
    if (pos < 0 || symbols[pos].next < 0) return;
    auto it = merges_.find(pair_key(symbols[pos].id, symbols[symbols[pos].next].id));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.result});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.removed || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Entries go stale when a neighbour merged first: the pair must still produce this result.
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.result != top.result) continue;
    left.id = top.result;
    right.removed = true;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    push_pair(left.prev);
    push_pair(top.pos);
  }
  for (int32_t i = 0; i >= 0 && i < n; i = symbols[i].next) out.push_back(symbols[i].id);
}

void BpeModel::encode_piece(std::string_view piece, std::vector<TokenId>& out) const {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    out.push_back(byte_tokens_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  const bool cacheable = piece.size() <= kCacheMaxPieceBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(std::string(piece));
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  merge_symbols(piece, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kCacheLimit) cache_.clear();
    cache_.emplace(std::string(piece), std::vector<TokenId>(out.begin() + first, out.end()));
  }
}

}  // namespace v4
