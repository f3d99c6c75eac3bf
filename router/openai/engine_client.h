// The router's only view of the engine (docs/design.md, router -> worker): token ids in, a
// stream of token events out, cancellation and a stats snapshot. The in-process engine and a
// remote worker behind gRPC both implement it, so nothing in router/ knows which one it has.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "model/grammar/json_grammar.h"

namespace v4::router {

using EngineRequestId = uint64_t;

// Per-request sampling, as the engine applies it (OpenAI/vLLM semantics).
struct EngineSampling {
  float temperature = 1.0f;  // 0: greedy
  float top_p = 1.0f;
  int32_t top_k = 0;  // 0: off
  float min_p = 0.0f;
  uint64_t seed = 0;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repetition_penalty = 1.0f;
  std::vector<std::pair<int32_t, float>> logit_bias;
  std::vector<int32_t> stop_token_ids;  // ending the output (not returned as text)
  uint32_t max_tokens = 16;
  bool logprobs = false;
  uint32_t top_logprobs = 0;
  // Set: score every prompt token after the first, with this many alternatives each (raw
  // logits, temperature 1). Such a request takes no prefix-cache hits.
  std::optional<uint32_t> prompt_logprobs;
  // Guided choice: when not empty, the output is exactly one of these token sequences followed
  // by the first stop token id.
  std::vector<std::vector<int32_t>> allowed_outputs;
  // Structured output: the output is JSON the constraint admits, then the first stop token id
  // (worker/request_sampler.h). `constraint_source`: the JSON schema text for kJsonSchema.
  OutputConstraintKind constraint = OutputConstraintKind::kNone;
  std::string constraint_source;
  // Not sampling but carried with it: MTP drafts per decode step (0 to 3; unset: the engine's
  // default). Changes how many tokens a step yields, never which.
  std::optional<uint32_t> speculative_tokens;
};

struct EngineRequest {
  std::vector<int32_t> prompt;
  EngineSampling sampling;
};

enum class EngineFinish { kNone, kStop, kLength, kCancelled, kError };

struct EngineTokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

// A prompt token's score: its logprob and rank (1 + the number of more likely tokens), and the
// most likely tokens at its position.
struct EnginePromptLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
  uint32_t rank = 1;
  std::vector<EngineTokenLogprob> top;
};

// One event of a request's stream. A token event has token >= 0; the last event of every
// request has finish != kNone (kCancelled / kError events carry no token).
struct EngineEvent {
  int32_t token = -1;
  float logprob = 0.0f;
  std::vector<EngineTokenLogprob> top_logprobs;
  // On the first token event of a request with prompt_logprobs: prompt tokens 1 .. n-1.
  std::vector<EnginePromptLogprob> prompt_logprobs;
  EngineFinish finish = EngineFinish::kNone;
  // Set on the first event: prompt tokens served from the prefix cache, and seconds the
  // request waited before its first step.
  uint32_t cached_tokens = 0;
  double queue_seconds = 0.0;
  std::string error;  // kError: what failed
};

// Cumulative histogram (Prometheus' exposition form): counts[i] is the number of observations
// <= bounds[i], so counts never decrease; counts.back() is the +Inf bucket, i.e. the number of
// all observations.
struct EngineHistogram {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;  // bounds.size() + 1
  double sum = 0.0;
};

// Expert-parallel worker groups' exchanges, summed over ranks (proto GroupTraffic).
struct EngineGroupTraffic {
  uint64_t dispatch_bytes = 0, combine_bytes = 0, exchanges = 0, joined_steps = 0;
  double dispatch_seconds = 0, expert_seconds = 0, combine_seconds = 0;
  double overlapped_seconds = 0;  // exchange time hidden under the ranks' own compute
};

struct EngineSnapshot {
  bool healthy = false;  // the step loop is alive (stepped, or idle and waiting for work)
  uint32_t running = 0, waiting = 0;
  // KV pages as vLLM counts its blocks: used are held by requests; free includes the cached
  // prefix pages no request holds (evictable), since admission reclaims them on demand.
  uint32_t pages_used = 0, pages_free = 0;
  uint32_t pages_evictable = 0;  // part of pages_free
  uint64_t preemptions = 0;
  uint64_t prefix_queries = 0, prefix_hits = 0;  // in tokens (vLLM's prefix_cache_* meaning)
  EngineHistogram batch_size;                    // sequences per step
  EngineHistogram step_seconds;                  // wall time per step
  EngineHistogram step_tokens;                   // tokens (prefill + decode) per step
  // expert_selections[layer][expert]: routed-expert picks since start.
  std::vector<std::vector<uint64_t>> expert_selections;
  EngineGroupTraffic group;
  // The disk store of prefix pages (--kv-disk), in pages and files: pages loaded from it, files
  // written, files evicted for size, files ignored (another model, corrupt), pages dropped.
  uint64_t kv_disk_hits = 0, kv_disk_writes = 0, kv_disk_evictions = 0, kv_disk_ignored = 0;
  uint64_t kv_disk_dropped = 0;
  // Speculative decoding (vLLM's spec_decode_* counts): steps of a request that verified
  // drafts, drafts verified, drafts accepted, and accepted drafts by their place in the step.
  uint64_t spec_num_drafts = 0, spec_num_draft_tokens = 0, spec_num_accepted_tokens = 0;
  std::vector<uint64_t> spec_accepted_per_position;
  // Decode steps recorded as graphs (CUDA graphs) and launched from a recording.
  uint64_t step_graph_captures = 0, step_graph_replays = 0;
};

class EngineClient {
 public:
  using EventCallback = std::function<void(EngineEvent)>;
  virtual ~EngineClient() = default;

  // Queues a request. `on_event` is called from an engine thread, in order, ending with a final
  // event; it must return quickly (post the work elsewhere). Fails without calling it when the
  // request can never run (empty, over the context limit).
  virtual Result<EngineRequestId> submit(EngineRequest request, EventCallback on_event) = 0;
  // Ends a request; it still gets its final kCancelled event. Unknown ids are ignored.
  virtual void cancel(EngineRequestId id) = 0;
  virtual EngineSnapshot snapshot() const = 0;
  // Requests can be taken now (the engine runs; for remote workers: at least one is connected
  // and not draining). Cheaper than snapshot(): asked once per request.
  virtual bool ready() const { return snapshot().healthy; }
  // Longest prompt + output the engine accepts per request.
  virtual uint32_t max_context() const = 0;
};

}  // namespace v4::router
