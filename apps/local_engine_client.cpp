#include "apps/local_engine_client.h"

#include <type_traits>
#include <utility>

namespace v4::apps {
namespace {

// Ids pass through unchanged.
static_assert(std::is_same_v<router::EngineRequestId, RequestId>);

router::EngineFinish to_engine_finish(FinishReason r) {
  switch (r) {
    case FinishReason::kNone:
      return router::EngineFinish::kNone;
    case FinishReason::kStop:
      return router::EngineFinish::kStop;
    case FinishReason::kLength:
      return router::EngineFinish::kLength;
    case FinishReason::kCancelled:
      return router::EngineFinish::kCancelled;
    case FinishReason::kError:
      return router::EngineFinish::kError;
  }
  return router::EngineFinish::kError;
}

}  // namespace

SamplingParams to_sampling_params(const router::EngineSampling& s) {
  SamplingParams p;
  p.temperature = s.temperature;
  p.top_p = s.top_p;
  p.top_k = s.top_k;
  p.min_p = s.min_p;
  p.seed = s.seed;
  p.presence_penalty = s.presence_penalty;
  p.frequency_penalty = s.frequency_penalty;
  p.repetition_penalty = s.repetition_penalty;
  p.logit_bias = s.logit_bias;
  p.stop_token_ids = s.stop_token_ids;
  p.max_tokens = s.max_tokens;
  p.logprobs = s.logprobs;
  p.top_logprobs = s.top_logprobs;
  p.prompt_logprobs = s.prompt_logprobs;
  p.allowed_outputs = s.allowed_outputs;
  p.constraint = s.constraint;
  p.constraint_source = s.constraint_source;
  return p;
}

router::EngineEvent to_engine_event(const GenerationEvent& e) {
  router::EngineEvent out;
  out.token = e.token;
  out.logprob = e.logprob;
  out.top_logprobs.reserve(e.top_logprobs.size());
  for (const TokenLogprob& t : e.top_logprobs) out.top_logprobs.push_back({t.token, t.logprob});
  out.prompt_logprobs.reserve(e.prompt_logprobs.size());
  for (const PromptTokenLogprobs& p : e.prompt_logprobs) {
    router::EnginePromptLogprob& entry = out.prompt_logprobs.emplace_back();
    entry.token = p.token;
    entry.logprob = p.logprob;
    entry.rank = p.rank;
    for (const TokenLogprob& t : p.top) entry.top.push_back({t.token, t.logprob});
  }
  out.finish = to_engine_finish(e.finish);
  out.cached_tokens = e.cached_tokens;
  out.queue_seconds = e.queue_seconds;
  out.error = e.error;
  if (out.finish == router::EngineFinish::kError && out.error.empty()) out.error = "engine error";
  return out;
}

router::EngineHistogram to_engine_histogram(const Histogram& h) {
  return {h.bounds, h.cumulative(), h.sum};
}

router::EngineSnapshot to_engine_snapshot(const EngineStats& s, bool healthy,
                                          uint32_t page_tokens) {
  router::EngineSnapshot out;
  out.healthy = healthy;
  out.running = s.running;
  out.waiting = s.waiting;
  out.pages_used = s.pages_used;
  out.pages_free = s.pages_free + s.pages_evictable;
  out.pages_evictable = s.pages_evictable;
  out.preemptions = s.preemptions;
  out.prefix_queries = (s.prefix_hits + s.prefix_misses) * page_tokens;
  out.prefix_hits = s.prefix_hits * page_tokens;
  out.batch_size = to_engine_histogram(s.batch_size);
  out.step_seconds = to_engine_histogram(s.step_time);
  out.step_tokens = to_engine_histogram(s.step_token_counts);
  out.expert_selections = s.expert_selections;
  out.kv_disk_hits = s.kv_disk_hits;
  out.kv_disk_writes = s.kv_disk_writes;
  out.kv_disk_evictions = s.kv_disk_evictions;
  out.kv_disk_ignored = s.kv_disk_ignored;
  out.kv_disk_dropped = s.kv_disk_dropped;
  out.spec_num_drafts = s.speculative.drafts;
  out.spec_num_draft_tokens = s.speculative.draft_tokens;
  out.spec_num_accepted_tokens = s.speculative.accepted_tokens;
  out.spec_accepted_per_position = s.speculative.accepted_per_position;
  out.step_graph_captures = s.step_graphs.captures;
  out.step_graph_replays = s.step_graphs.replays;
  return out;
}

Result<router::EngineRequestId> LocalEngineClient::submit(router::EngineRequest request,
                                                          EventCallback on_event) {
  GenerationRequest r;
  r.prompt = std::move(request.prompt);
  r.sampling = to_sampling_params(request.sampling);
  r.speculative_tokens = request.sampling.speculative_tokens;
  // A request scoring its prompt reads nothing from the cache (engine_client.h): no lookup.
  const bool looks_up = engine_.options().prefix_caching && !request.sampling.prompt_logprobs;
  const uint64_t prompt_tokens = r.prompt.size();
  Result<RequestId> id =
      engine_.submit(r, [cb = std::move(on_event), prefix = prefix_, looks_up, prompt_tokens,
                         counted = std::make_shared<bool>(false)](const GenerationEvent& e) {
        // The first token's event carries the cache hit of the request's admission. (Events
        // of one request come in order from one thread; the flag is shared by every copy of
        // this callback.)
        if (looks_up && !*counted && e.token >= 0) {
          *counted = true;
          prefix->queries += prompt_tokens;
          prefix->hits += e.cached_tokens;
        }
        cb(to_engine_event(e));
      });
  if (!id) return id.status();
  return *id;
}

router::EngineSnapshot LocalEngineClient::snapshot() const {
  router::EngineSnapshot out =
      to_engine_snapshot(engine_.stats(), engine_.alive(), engine_.options().page_tokens);
  out.prefix_queries = prefix_->queries.load();
  out.prefix_hits = prefix_->hits.load();
  return out;
}

}  // namespace v4::apps
