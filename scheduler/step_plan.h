// The contract between the scheduler and the worker (docs/design.md, engine loop): what one step
// runs and which KV pages changed hands, and what the worker sends back. Plain values only.
#pragma once

#include <cstdint>
#include <vector>

namespace v4 {

using RequestId = uint64_t;
using PageId = uint32_t;

// One sequence's share of a step: tokens [first_position, first_position + tokens.size()) of
// its prompt-plus-output stream. `pages` is the whole block table after this step's allocation.
struct ScheduledSequence {
  RequestId id = 0;
  uint64_t first_position = 0;
  std::vector<int32_t> tokens;
  std::vector<PageId> pages;
  std::vector<PageId> new_pages;  // appended to `pages` this step
  bool samples = false;           // the chunk reaches the end of the stream: sample a token
  // Prefix caching (spec §4.4). On the step that resumes a sequence from a prefix hit:
  // tokens [0, first_position), whose rows are in the shared pages `pages[0 .. first_position /
  // page_tokens)`; the worker restores the state snapshot stored with the last of them.
  std::vector<int32_t> cached_tokens;
  // The chunk ends on a page boundary the cache wants: the worker snapshots the per-sequence
  // state (raw window, carry, row counts) there and keeps it with that page.
  bool snapshot = false;
  // Speculative decoding (docs/design.md): positions past the chunk the worker may also run
  // this step as draft tokens to verify; their pages are in `pages` already. Nonzero only on a
  // sampling chunk without a snapshot.
  uint32_t draft_room = 0;
};

// A prefix page by its place in the hash chain (prefix_cache.h).
struct PrefixPageKey {
  uint64_t hash = 0, parent = 0;
  std::vector<int32_t> tokens;
};

// With a PrefixPageStore attached: an evicted cached page whose rows and snapshot the worker
// copies out before anything reuses the page id, and a page the worker fills from the store
// before the step runs (its snapshot included).
struct PageSpill {
  PageId page = 0;
  PrefixPageKey key;
};
struct PageLoad {
  PageId page = 0;
  uint64_t hash = 0;
};

struct StepPlan {
  std::vector<ScheduledSequence> sequences;  // decodes first, then prefill chunks
  // Requests whose KV state is gone (preempted: recomputed later from position 0; cancelled or
  // finished: never seen again). Their pages are already back in the allocator.
  std::vector<RequestId> preempted;
  std::vector<RequestId> released;
  std::vector<PageId> freed_pages;
  // Cached prefix pages whose contents were dropped (LRU eviction or flush); the worker forgets
  // their snapshots. An evicted page may already be reused by this plan's block tables.
  std::vector<PageId> evicted_pages;
  // Only with a PrefixPageStore. Spills come first (before evicted snapshots are dropped), loads
  // last: a page id evicted and loaded in the same plan keeps the loaded contents.
  std::vector<PageSpill> spilled_pages;
  std::vector<PageLoad> loaded_pages;
  uint64_t token_count() const {
    uint64_t n = 0;
    for (const ScheduledSequence& s : sequences) n += s.tokens.size();
    return n;
  }
  bool empty() const { return sequences.empty(); }
};

struct SampledToken {
  RequestId id = 0;
  int32_t token = 0;
  bool finished = false;  // stop token, max tokens or context limit: the request leaves
  // An accepted draft: the token was also the step's input at its position, so its KV state
  // exists already.
  bool in_kv = false;
};

// After a speculative step that rejected a draft: the worker restored the request's KV state to
// `computed` tokens (the start of the step's chunk); the tokens after it are run again.
struct KvRollback {
  RequestId id = 0;
  uint64_t computed = 0;
};

struct StepOutput {
  // One per ScheduledSequence with `samples`, or, with speculative decoding, one per accepted
  // draft plus one, in stream order.
  std::vector<SampledToken> sampled;
  std::vector<KvRollback> rolled_back;
};

}  // namespace v4
