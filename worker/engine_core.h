// The engine loop without a thread (docs/design.md): plan = scheduler.schedule(),
// out = worker.execute(plan), scheduler.update(out). Engine wraps it in a thread; tests drive
// it step by step.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/histogram.h"
#include "model/backend/backend.h"
#include "model/v4/step_graphs.h"
#include "model/v4/v4_weights.h"
#include "scheduler/scheduler.h"
#include "worker/model_worker.h"
#include "worker/step_group.h"

namespace v4 {

struct EngineOptions {
  KvStorage storage = KvStorage::kF32;
  uint32_t page_tokens = 256;
  uint64_t kv_memory_bytes = uint64_t{1} << 30;  // pages + per-sequence fixed state
  uint32_t total_pages = 0;                      // nonzero: overrides the byte budget
  uint32_t max_context = 4096;
  uint32_t max_batch_tokens = 256;
  uint32_t max_seqs = 64;
  bool prefix_caching = false;  // share full pages of equal prompt prefixes (spec §4.4)
  // With prefix caching: evicted cached pages spill to this directory, up to kv_disk_bytes, and
  // survive a restart; the files carry model_identity (kv_disk/model_identity.h).
  std::string kv_disk_dir;
  uint64_t kv_disk_bytes = 0;
  uint64_t model_identity = 0;
  // Token bytes for structured-output masks; without it such requests are refused.
  std::shared_ptr<const TokenVocabulary> vocabulary;
  // Drafts a decode step verifies for requests that do not choose (0 to 3; docs/design.md,
  // speculative decoding). Needs a model with an MTP block.
  uint32_t speculative_tokens = 0;
  // Steps with more running requests than this verify no drafts (0: no limit;
  // SchedulerConfig::speculative_max_batch).
  uint32_t speculative_max_batch = 0;
  // ModelWorkerOptions::select_candidates: sampled rows return their best tokens, not their
  // logits, where the request's sampler allows (the same tokens and logprobs either way).
  bool select_candidates = true;
  // Decode-step recordings kept on a backend that makes them (CUDA graphs; StepGraphs); 0: none.
  // Never changes a token.
  uint32_t step_graphs = 64;
  // Decode steps whose positions are all below this share recordings (ForwardLimits).
  uint64_t graph_positions = 4096;
  // Record the decode steps of every padded batch size up to max_seqs before serving, within
  // graph_capture_seconds (V4Forward::capture_decode_graphs); off: each shape on first use.
  bool capture_graphs = false;
  double graph_capture_seconds = 60;
  // In a worker group: each step in two micro-batches, one's MoE exchange beside the other's
  // attention (ForwardLimits::two_micro_batches). Never changes a token.
  bool two_micro_batches = false;
};

struct GenerationRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  // A resumed request (docs/design.md, resumable requests): the last `resumed_tokens` of
  // `prompt` are output it already produced, so its next token is output token number
  // resumed_tokens, sampled as if it had never stopped; max_tokens counts them too.
  uint32_t resumed_tokens = 0;
  // Drafts per decode step (0 to 3); unset: EngineOptions::speculative_tokens. Never changes
  // the tokens or logprobs, only how many a step yields.
  std::optional<uint32_t> speculative_tokens;
};

// Bucket upper bounds of EngineStats' histograms.
inline std::vector<double> batch_size_bounds() { return {1, 2, 4, 8, 16, 32, 64, 128, 256}; }
// vLLM's iteration_tokens_total buckets.
inline std::vector<double> step_tokens_bounds() {
  return {1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};
}
inline std::vector<double> step_seconds_bounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

struct EngineStats {
  uint32_t running = 0, waiting = 0;
  uint32_t pages_used = 0, pages_free = 0;
  uint32_t pages_evictable = 0;  // cached prefix pages no request holds (SchedulerStats)
  uint64_t preemptions = 0;
  uint64_t steps = 0, step_tokens = 0, step_sequences = 0;
  double step_seconds = 0.0;      // summed over steps
  double prefix_hit_ratio = 0.0;  // hits / (hits + misses), 0 before any lookup
  uint64_t prefix_hits = 0, prefix_misses = 0, prefix_evictions = 0;  // in pages
  uint32_t pages_cached = 0;
  // The disk store of prefix pages (--kv-disk): pages loaded from it (part of prefix_hits), page
  // files written, files evicted for size, files ignored (another model, corrupt, truncated),
  // pages dropped on a full write queue, and the files it holds now.
  uint64_t kv_disk_hits = 0, kv_disk_writes = 0, kv_disk_evictions = 0, kv_disk_ignored = 0;
  uint64_t kv_disk_dropped = 0, kv_disk_files = 0, kv_disk_bytes = 0;
  size_t prefix_snapshot_bytes = 0;  // held by snapshots; budgeted with each page
  size_t page_bytes = 0;
  // Per non-empty step since start: sequences in the plan, and wall time of schedule + forward
  // + sampling + update.
  Histogram batch_size{batch_size_bounds()};
  Histogram step_time{step_seconds_bounds()};         // seconds
  Histogram step_token_counts{step_tokens_bounds()};  // tokens (prefill + decode) per step
  // [layer][expert]: tokens that picked each routed expert since start (ForwardStats).
  std::vector<std::vector<uint64_t>> expert_selections;
  GroupTraffic group;  // a worker group's expert exchanges (zero outside a group)
  SpeculativeStats speculative;
  StepGraphStats step_graphs;  // decode steps recorded and replayed (ForwardStats)
  // What EngineOptions::capture_graphs recorded before serving (empty when off).
  DecodeGraphCapture start_graphs;
};

class EngineCore {
 public:
  using Clock = std::chrono::steady_clock;

  // `group` (not owned): the worker group this engine steps in lockstep with; null for a
  // worker of its own. `experts` (not owned; outside a group only): where the MoE layers' routed
  // experts run (e.g. TieredExpertDispatcher); null: all on `backend`.
  EngineCore(const V4Weights& weights, Backend& backend, const EngineOptions& options,
             StepGroup* group = nullptr, ExpertDispatcher* experts = nullptr);
  // With a disk store: the cached prefix pages no request holds are written to it first.
  ~EngineCore();
  EngineCore(const EngineCore&) = delete;
  EngineCore& operator=(const EngineCore&) = delete;

  // Pages the byte budget buys after reserving every sequence slot's fixed state.
  static Result<uint32_t> pages_for_budget(const V4Config& config, const EngineOptions& options);
  // Rejects requests that could never run: empty, over the context limit, needing more pages
  // than exist, or with guided-choice sequences outside the vocabulary or unable to end.
  Status validate(const GenerationRequest& request) const;

  Result<RequestId> add(const GenerationRequest& request);
  // `arrival`: when the request reached the engine, the start of its queue time.
  Status add(RequestId id, const GenerationRequest& request,
             Clock::time_point arrival = Clock::now());
  // The request's final kCancelled event, or nothing for an unknown or finished id.
  std::optional<GenerationEvent> cancel(RequestId id);
  // Drops every unreferenced cached prefix page (the worker forgets their snapshots next step).
  uint32_t flush_prefix_cache() { return scheduler_.flush_prefix_cache(); }
  // One step; events in plan order. A failed forward ends the plan's requests with kError.
  // In a group, every rank calls step() once per loop turn, work or not: the ranks agree, and
  // all of them run the forward when any has tokens. A broken group throws GroupFailure.
  std::vector<GenerationEvent> step();
  StepGroup* group() const { return group_; }
  // The last step() ran a forward for the group (this rank's tokens or another's).
  bool last_step_joined() const { return last_step_joined_; }

  bool has_work() const { return scheduler_.has_work(); }
  EngineStats stats() const;
  const EngineOptions& options() const { return options_; }
  const Scheduler& scheduler() const { return scheduler_; }
  const ModelWorker& worker() const { return worker_; }
  // Replaces the model's MTP drafter (tests verify with drafts of their choosing).
  void set_draft_source(std::unique_ptr<DraftSource> source) {
    worker_.set_draft_source(std::move(source));
  }

 private:
  // What a request's first event reports (GenerationEvent::cached_tokens, queue_seconds).
  struct Admission {
    Clock::time_point arrival;
    std::optional<double> queue_seconds;  // set when a step first runs the request
    uint32_t cached_tokens = 0;
  };

  static SchedulerConfig scheduler_config(const V4Config& config, const EngineOptions& options);
  Status validate_guided(const SamplingParams& sampling) const;
  void note_scheduled(const StepPlan& plan, Clock::time_point start);
  void capture_graphs_at_start();
  // Fills in the first-event fields if `e` is its request's first event.
  void stamp_first(GenerationEvent& e);

  EngineOptions options_;
  StepGroup* group_;
  bool last_step_joined_ = false;
  uint32_t n_vocab_;
  Scheduler scheduler_;
  ModelWorker worker_;
  RequestId next_id_ = 1;
  EngineStats totals_;
  std::unordered_map<RequestId, Admission> admissions_;  // until the request's first event
};

}  // namespace v4
