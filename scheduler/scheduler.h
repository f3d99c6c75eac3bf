// Continuous batching over paged KV (docs/design.md, engine loop): each step, `schedule` packs
// decode tokens first, then prefill chunks, within a token and a sequence budget, giving pages
// to the sequences it runs; `update` takes back the sampled tokens. Capacity policy: FCFS with
// head-of-line admission (a waiting request is never skipped, so none starves) and preemption by
// recompute of the most recently admitted request when pages run out (vLLM v1's policy).
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "scheduler/page_allocator.h"
#include "scheduler/step_plan.h"

namespace v4 {

struct SchedulerConfig {
  uint32_t page_tokens = 256;  // tokens per page, a multiple of 128 (spec §4.4)
  uint32_t total_pages = 0;
  uint32_t max_batch_tokens = 256;
  uint32_t max_seqs = 64;
};

struct SchedulerStats {
  uint32_t running = 0;
  uint32_t waiting = 0;
  uint32_t pages_used = 0;
  uint32_t pages_free = 0;
  uint64_t preemptions = 0;
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config);

  // Queues a request behind every waiting one. Fails for a duplicate id or an empty prompt.
  Status add(RequestId id, std::vector<int32_t> prompt);
  // Drops a request wherever it is; its pages return to the allocator now. False if unknown.
  bool cancel(RequestId id);

  StepPlan schedule();
  void update(const StepPlan& plan, const StepOutput& output);

  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  bool contains(RequestId id) const { return records_.count(id) != 0; }
  SchedulerStats stats() const;
  const PageAllocator& allocator() const { return allocator_; }
  const SchedulerConfig& config() const { return config_; }
  // The block table of a request (empty while waiting).
  const std::vector<PageId>& pages_of(RequestId id) const { return records_.at(id).pages; }

 private:
  struct SequenceRecord {
    std::vector<int32_t> tokens;  // prompt, then every sampled token
    uint64_t computed = 0;        // tokens whose KV state exists
    std::vector<PageId> pages;    // block table
  };
  struct StepBuilder;

  uint32_t pages_for(uint64_t tokens) const;
  bool grow_pages(SequenceRecord& r, uint64_t tokens, std::vector<PageId>* added);
  void free_pages(SequenceRecord& r, std::vector<PageId>& freed);
  void preempt(RequestId victim, StepBuilder& step);
  bool schedule_running(RequestId id, uint64_t n, StepBuilder& step);
  void admit_waiting(StepBuilder& step);
  ScheduledSequence make_entry(RequestId id, uint64_t n, std::vector<PageId> added) const;

  SchedulerConfig config_;
  PageAllocator allocator_;
  std::unordered_map<RequestId, SequenceRecord> records_;
  std::deque<RequestId> waiting_;
  std::vector<RequestId> running_;  // admission order: the back is preempted first
  std::vector<RequestId> released_since_last_step_;
  std::vector<PageId> freed_since_last_step_;
  uint64_t preemptions_ = 0;
};

}  // namespace v4
