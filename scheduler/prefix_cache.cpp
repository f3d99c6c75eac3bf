#include "scheduler/prefix_cache.h"

#include <algorithm>
#include <cassert>

namespace v4 {
namespace {

// splitmix64's finaliser: cheap and well mixed, so chains of similar pages spread out.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t PrefixCache::chain_hash(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = mix(parent ^ 0x5bd1e9955bd1e995ull);
  for (int32_t t : tokens) h = mix(h ^ static_cast<uint32_t>(t));
  return mix(h ^ tokens.size());
}

std::optional<PageId> PrefixCache::find(uint64_t hash, uint64_t parent,
                                        std::span<const int32_t> tokens) const {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  const Entry& e = pages_.at(it->second);
  if (e.parent != parent ||
      !std::equal(e.tokens.begin(), e.tokens.end(), tokens.begin(), tokens.end())) {
    return std::nullopt;
  }
  return it->second;
}

bool PrefixCache::insert(PageId page, uint64_t hash, uint64_t parent,
                         std::span<const int32_t> tokens) {
  assert(!contains(page));
  if (by_hash_.count(hash)) return false;
  Entry& e = pages_[page];
  e.hash = hash;
  e.parent = parent;
  e.tokens.assign(tokens.begin(), tokens.end());
  e.refs = 1;
  by_hash_[hash] = page;
  return true;
}

void PrefixCache::acquire(PageId page) {
  Entry& e = pages_.at(page);
  if (e.refs++ == 0) lru_.erase(e.lru);
}

void PrefixCache::release(PageId page) {
  Entry& e = pages_.at(page);
  assert(e.refs > 0 && "prefix page released more often than held");
  if (--e.refs == 0) e.lru = lru_.insert(lru_.end(), page);
}

std::optional<PageId> PrefixCache::evict(PrefixPageKey* key) {
  if (lru_.empty()) return std::nullopt;
  const PageId page = lru_.front();
  lru_.pop_front();
  auto it = pages_.find(page);
  by_hash_.erase(it->second.hash);
  if (key) *key = {it->second.hash, it->second.parent, std::move(it->second.tokens)};
  pages_.erase(it);
  return page;
}

uint32_t PrefixCache::ref_count(PageId page) const {
  auto it = pages_.find(page);
  return it == pages_.end() ? 0 : it->second.refs;
}

}  // namespace v4
