// Continuous batching over paged KV (docs/design.md, engine loop): each step, `schedule` packs
// decode tokens first, then prefill chunks, within a token and a sequence budget, giving pages
// to the sequences it runs; `update` takes back the sampled tokens. Capacity policy: FCFS with
// head-of-line admission (a waiting request is never skipped, so none starves) and preemption by
// recompute of the most recently admitted request when pages run out (vLLM v1's policy).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "scheduler/page_allocator.h"
#include "scheduler/prefix_cache.h"
#include "scheduler/prefix_page_store.h"
#include "scheduler/step_plan.h"

namespace v4 {

struct SchedulerConfig {
  uint32_t page_tokens = 256;  // tokens per page, a multiple of 128 (spec §4.4)
  uint32_t total_pages = 0;
  uint32_t max_batch_tokens = 256;
  uint32_t max_seqs = 64;
  // Share full pages between sequences with equal token prefixes (spec §4.4). Prefill chunks
  // then end on page boundaries, where the worker snapshots per-sequence state.
  bool prefix_caching = false;
  // Steps that start with more running requests than this give no draft room (0: no limit).
  // Drafts pay while a decode step reads its weights at the memory's pace; a larger batch makes
  // the step compute-bound, and then every verified draft costs about a token's full compute
  // (docs/design.md, speculative decoding). Tokens never depend on it.
  uint32_t speculative_max_batch = 0;
};

struct SchedulerStats {
  uint32_t running = 0;
  uint32_t waiting = 0;
  // Every page is in exactly one of: held by a request (used), cached by the prefix cache with
  // no request holding it (evictable: reclaimed on demand), or free.
  uint32_t pages_used = 0;
  uint32_t pages_evictable = 0;
  uint32_t pages_free = 0;
  uint64_t preemptions = 0;
  uint32_t pages_cached = 0;       // registered prefix pages, referenced or not
  uint64_t prefix_hits = 0;        // pages taken from the cache at admission
  uint64_t prefix_misses = 0;      // full prompt pages looked up and not found
  uint64_t prefix_evictions = 0;   // unreferenced cached pages reused under page pressure
  uint64_t prefix_store_hits = 0;  // of prefix_hits: pages loaded from the PrefixPageStore
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config);

  // Queues a request behind every waiting one. Fails for a duplicate id or an empty prompt.
  // With `reuse_prefix` false the request takes no cached pages (its own still enter the cache).
  // `speculative_tokens`: draft positions a sampling chunk of the request may run besides its
  // own (ScheduledSequence::draft_room), when the budget and free pages allow.
  Status add(RequestId id, std::vector<int32_t> prompt, bool reuse_prefix = true,
             uint32_t speculative_tokens = 0);
  // Drops a request wherever it is; its pages return to the allocator now. False if unknown.
  bool cancel(RequestId id);

  StepPlan schedule();
  void update(const StepPlan& plan, const StepOutput& output);

  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  bool contains(RequestId id) const { return records_.count(id) != 0; }
  SchedulerStats stats() const;
  const PageAllocator& allocator() const { return allocator_; }
  const PrefixCache& prefix_cache() const { return prefix_; }
  // Gives every unreferenced cached page back to the allocator; returns how many. The worker
  // hears of them through the next plan's evicted_pages.
  uint32_t flush_prefix_cache();
  // Lookups that miss in memory continue in `store` (not owned; null: none). Evicted cached pages
  // are then announced in StepPlan::spilled_pages, found ones in StepPlan::loaded_pages.
  void set_page_store(PrefixPageStore* store) { store_ = store; }
  // A plan that runs nothing and carries only the page changes since the last one (releases,
  // frees, evictions and spills): how a stopping engine hands its cache to the store.
  StepPlan take_page_changes();
  const SchedulerConfig& config() const { return config_; }
  // The block table of a request (empty while waiting).
  const std::vector<PageId>& pages_of(RequestId id) const { return records_.at(id).pages; }

 private:
  struct SequenceRecord {
    std::vector<int32_t> tokens;   // prompt, then every sampled token
    uint64_t computed = 0;         // tokens whose KV state exists
    std::vector<PageId> pages;     // block table
    std::vector<uint64_t> hashes;  // chain hashes of the first full pages (tokens never change)
    bool reuse_prefix = true;      // may take cached pages at admission
    uint32_t speculative_tokens = 0;
  };
  struct StepBuilder;

  uint32_t pages_for(uint64_t tokens) const;
  // Tokens the next chunk may run: with prefix caching it stops at the next page boundary.
  uint64_t chunk(const SequenceRecord& r, uint64_t budget) const;
  uint64_t page_hash(SequenceRecord& r, size_t page);
  std::optional<PageId> cached_page(SequenceRecord& r, size_t page);
  // Per page of the longest cached prefix: its id when in memory, none when in the store.
  std::vector<std::optional<PageId>> lookup_prefix(SequenceRecord& r, uint32_t* lookups);
  void load_stored_page(SequenceRecord& r, size_t page, StepBuilder& step);
  void register_page(SequenceRecord& r, size_t page);
  uint32_t available_pages() const { return allocator_.free_count() + prefix_.evictable(); }
  std::optional<PageId> take_page();
  bool grow_pages(SequenceRecord& r, uint64_t tokens, std::vector<PageId>* added);
  void free_pages(SequenceRecord& r, std::vector<PageId>& freed);
  void preempt(RequestId victim, StepBuilder& step);
  bool schedule_running(RequestId id, uint64_t n, StepBuilder& step);
  // Draft positions a running request's chunk of n tokens may add (pages taken, no preemption).
  uint32_t draft_room(SequenceRecord& r, uint64_t n, const StepBuilder& step,
                      std::vector<PageId>* added);
  void admit_waiting(StepBuilder& step);
  ScheduledSequence make_entry(RequestId id, uint64_t n, std::vector<PageId> added);

  SchedulerConfig config_;
  PageAllocator allocator_;
  PrefixCache prefix_;
  std::unordered_map<RequestId, SequenceRecord> records_;
  std::deque<RequestId> waiting_;
  std::vector<RequestId> running_;  // admission order: the back is preempted first
  std::vector<RequestId> released_since_last_step_;
  std::vector<PageId> freed_since_last_step_;
  std::vector<PageId> evicted_since_last_step_;
  std::vector<PageSpill> spilled_since_last_step_;
  PrefixPageStore* store_ = nullptr;
  uint64_t preemptions_ = 0;
  uint64_t prefix_hits_ = 0, prefix_misses_ = 0, prefix_evictions_ = 0, prefix_store_hits_ = 0;
};

}  // namespace v4
