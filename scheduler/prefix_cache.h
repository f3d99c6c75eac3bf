// Prefix-cache accounting (spec §4.4, prefix sharing): a full page of compressed rows depends only
// on the tokens up to its end, so a page is identified by a hash chain over full pages' token ids,
// hash(page i) = hash(hash(page i−1), tokens of page i). Registered pages carry a reference count
// (how many block tables hold them); unreferenced ones stay cached in LRU order until the
// allocator needs them back. Only numbers live here: the bytes of the page and the per-sequence
// state snapshot taken at its end (§4.4: the carry state is not derivable from cached rows)
// belong to the worker.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "scheduler/step_plan.h"

namespace v4 {

class PrefixCache {
 public:
  // The chain hash of a page given its parent's hash (0 for the first page).
  static uint64_t chain_hash(uint64_t parent, std::span<const int32_t> tokens);

  // The cached page holding exactly `tokens` after a parent with hash `parent`, or none. The
  // tokens and parent are compared too, so a 64-bit collision cannot return wrong rows.
  std::optional<PageId> find(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const;

  // Registers a page its (single) owner has just filled: reference count 1. False, and nothing
  // changes, when an equal page is already registered (a duplicate stays private to its owner).
  bool insert(PageId page, uint64_t hash, uint64_t parent, std::span<const int32_t> tokens);
  // One more block table holds the page; an unreferenced page leaves the LRU list.
  void acquire(PageId page);
  // One block table fewer; at zero the page joins the back (most recent end) of the LRU list.
  void release(PageId page);
  // Forgets the least recently released unreferenced page and returns it: the caller reuses it
  // or gives it back to the allocator. `key`, when given, receives the page's place in the chain
  // (for a PrefixPageStore to keep it).
  std::optional<PageId> evict(PrefixPageKey* key = nullptr);

  bool contains(PageId page) const { return pages_.count(page) != 0; }
  uint32_t ref_count(PageId page) const;
  bool idle(PageId page) const { return contains(page) && ref_count(page) == 0; }
  uint32_t cached() const { return static_cast<uint32_t>(pages_.size()); }
  uint32_t evictable() const { return static_cast<uint32_t>(lru_.size()); }
  // Unreferenced pages, the next eviction first.
  std::vector<PageId> lru_order() const { return {lru_.begin(), lru_.end()}; }

 private:
  struct Entry {
    uint64_t hash = 0, parent = 0;
    std::vector<int32_t> tokens;
    uint32_t refs = 0;
    std::list<PageId>::iterator lru;  // valid while refs == 0
  };

  std::unordered_map<PageId, Entry> pages_;
  std::unordered_map<uint64_t, PageId> by_hash_;
  std::list<PageId> lru_;  // front: evicted first
};

}  // namespace v4
