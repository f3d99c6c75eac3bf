// Executes one StepPlan (docs/design.md engine loop): keeps a PagedSequenceKv per running
// request over the shared PagedKvCache, runs the batched forward over the plan's chunks and
// samples the requests whose chunk reached the end of their stream.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "model/v4/v4_forward.h"
#include "scheduler/step_plan.h"
#include "worker/draft_source.h"
#include "worker/kv_disk/kv_disk_store.h"
#include "worker/paged_kv_cache.h"
#include "worker/paged_sequence_kv.h"
#include "worker/prompt_logprobs.h"
#include "worker/request_sampler.h"

namespace v4 {

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason reason);

// One streamed result: a token (with logprobs when asked), or for kCancelled/kError a final
// event with token -1.
struct GenerationEvent {
  RequestId id = 0;
  int32_t token = -1;
  float logprob = 0.0f;
  std::vector<TokenLogprob> top_logprobs;
  // On the first token event of a request with SamplingParams::prompt_logprobs: entries for
  // prompt tokens 1 .. n-1 (the first prompt token has none).
  std::vector<PromptTokenLogprobs> prompt_logprobs;
  FinishReason finish = FinishReason::kNone;
  // Set by EngineCore on a request's first event (token or final), kept through preemption:
  // prompt tokens served from the prefix cache at admission, and seconds from add (or
  // Engine::submit) to the first step that ran the request (to the event if none did).
  uint32_t cached_tokens = 0;
  double queue_seconds = 0.0;
  std::string error;  // kError: what failed
};

// Speculative decoding since start, in vLLM's spec_decode terms: steps that verified drafts
// (one per request and step), drafts verified, drafts accepted, and accepted drafts by their
// place in the step's run of drafts.
struct SpeculativeStats {
  uint64_t drafts = 0;
  uint64_t draft_tokens = 0;
  uint64_t accepted_tokens = 0;
  std::vector<uint64_t> accepted_per_position;
};

struct ModelWorkerOptions {
  PagedKvOptions kv;
  uint32_t max_chunk = 256;     // the scheduler's max_batch_tokens
  uint32_t max_context = 4096;  // per request: prompt + output
  // Cached prefix pages spill to this store when evicted (dir empty: none).
  KvDiskOptions disk;
  std::shared_ptr<const TokenVocabulary> vocabulary;  // for structured outputs
  // A sampled row returns only its best tokens and log-normalizer, selected where the logits
  // are (on a GPU: no row of logits crosses to the host), for requests whose sampler can choose
  // from them (RequestSampler::candidates_needed); the same tokens and logprobs either way.
  bool select_candidates = true;
  size_t step_graphs = 64;         // ForwardLimits::step_graphs
  uint64_t graph_positions = 256;  // ForwardLimits::graph_positions
  bool two_micro_batches = false;  // ForwardLimits::two_micro_batches
};

class ModelWorker {
 public:
  // `experts`: the dispatcher of a worker group (not owned; null: every expert runs here).
  ModelWorker(const V4Weights& weights, Backend& backend, const ModelWorkerOptions& options,
              ExpertDispatcher* experts = nullptr);

  // `prompt` is kept only when the request asks for prompt logprobs.
  // The last `resumed` tokens of `prompt` are output the request produced before (a request
  // resumed elsewhere after a failure): sampling continues after them.
  // `speculative_tokens`: drafts each decode step may verify (0: none; needs a DraftSource).
  void add_request(RequestId id, const SamplingParams& params, std::span<const int32_t> prompt,
                   uint32_t resumed = 0, uint32_t speculative_tokens = 0);
  // `join_group_step`: run the forward even without tokens, so that this rank joins its group's
  // exchanges (the expert dispatcher is collective and another rank has tokens).
  Result<StepOutput> execute(const StepPlan& plan, std::vector<GenerationEvent>& events,
                             bool join_group_step = false);

  const PagedKvCache& cache() const { return cache_; }
  // Where drafts come from: the model's MTP block when it has one (MtpDrafter); tests may put
  // another source in (null: no drafts).
  void set_draft_source(std::unique_ptr<DraftSource> source) { drafter_ = std::move(source); }
  bool has_draft_source() const { return drafter_ != nullptr; }
  const SpeculativeStats& speculative_stats() const { return speculative_; }
  // Counters of the forward pass, expert selections per layer among them.
  const ForwardStats& forward_stats() const { return forward_.stats(); }
  // Decode steps of up to max_sequences sequences recorded before any request (V4Forward).
  Result<DecodeGraphCapture> capture_decode_graphs(int64_t max_sequences, double budget_seconds) {
    return forward_.capture_decode_graphs(cache_.layout(), max_sequences, budget_seconds);
  }
  // Prefix-cache snapshots held (spec §4.4), one per cached page the scheduler asked for.
  size_t snapshot_count() const { return snapshots_.size(); }
  size_t snapshot_bytes() const;
  size_t live_sequences() const { return sequences_.size(); }
  // The disk store of prefix pages, or null (no --kv-disk, or it could not be opened).
  KvDiskStore* disk_store() const { return disk_.get(); }
  // A stopping engine's last plan of page changes: spills every page in it, waiting for room in
  // the write queue, and returns when the files are written.
  Status save_prefix_pages(const StepPlan& changes);

 private:
  struct RequestState {
    RequestSampler sampler;
    std::unique_ptr<PagedSequenceKv> kv;  // null until scheduled (and after preemption)
    // Until the first token event carries them out.
    std::optional<PromptLogprobsCollector> prompt_logprobs;
    uint32_t speculative = 0;
    std::vector<int32_t> step_tokens;  // this step's chunk and drafts (speculative requests)
    size_t n_drafts = 0;               // the drafts at the end of step_tokens
    KvSnapshot saved;                  // the carry before this step's drafts
    // Back-off of a request whose drafts keep failing: after n verify steps in a row with no
    // draft accepted it drafts again only after 2^n − 1 sampling steps without (n ≤ 4).
    uint32_t failed_verifies = 0, steps_without_drafts = 0;
  };
  // The step's input of a speculative request that samples: its chunk, plus drafts when the
  // scheduler left room and the source has some (the carry is saved before them).
  Result<std::span<const int32_t>> speculative_input(RequestId id, RequestState& r,
                                                     const ScheduledSequence& s);
  // Samples the chunk's last row and then each draft's row while the draft equals the token
  // sampled before it; rolls the KV state back when a draft is rejected. Appends events.
  Status sample_speculative(RequestState& r, const ScheduledSequence& s, const ForwardOutput& fwd,
                            size_t index, size_t hidden_row, StepOutput& out,
                            std::vector<GenerationEvent>& events);
  // The choices of the step's sequences that sample from a whole row (into row_choices_, in
  // plan order), made in parallel on the backend's host threads; refuses a request whose
  // prompt logprobs are incomplete.
  Status sample_rows(const StepPlan& plan, std::span<const SequenceInput> inputs,
                     const ForwardOutput& fwd);
  // Feeds the all-position logits of the sequences that asked to their prompt logprobs.
  void score_prompts(const StepPlan& plan, std::span<const SequenceInput> inputs,
                     const ForwardOutput& fwd);
  // `position`: where the sampled token sits in the stream.
  FinishReason finish_after(const RequestState& r, uint64_t position, int32_t token) const;
  GenerationEvent token_event(RequestId id, RequestState& r, SampledChoice c, uint64_t position);

  const V4Config& config_;
  V4Forward forward_;
  ForwardOutput forward_out_;  // reused across steps
  // Per step: the sequences that sample from a whole row on the host, and their choices (made
  // in parallel before the step's events, which go out in plan order).
  std::vector<size_t> row_samplers_;
  std::vector<SampledChoice> row_choices_;
  ModelWorkerOptions options_;
  PagedKvCache cache_;
  std::map<RequestId, RequestState> sequences_;
  // Keyed by the page whose end the snapshot describes; dropped when the scheduler frees or
  // evicts that page.
  std::unordered_map<PageId, KvSnapshot> snapshots_;
  std::unique_ptr<KvDiskStore> disk_;
  std::unique_ptr<DraftSource> drafter_;
  SpeculativeStats speculative_;
};

}  // namespace v4
