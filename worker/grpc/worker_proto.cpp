#include "worker/grpc/worker_proto.h"

#include <string>

#include "worker/draft_source.h"

namespace v4::worker_grpc {
namespace {

void to_proto(const Histogram& h, pb::Histogram& out) {
  for (double b : h.bounds) out.add_bounds(b);
  for (uint64_t c : h.cumulative()) out.add_counts(c);
  out.set_sum(h.sum);
}

}  // namespace

Result<GenerationRequest> from_proto(const pb::SubmitRequest& r) {
  GenerationRequest g;
  g.prompt.assign(r.prompt().begin(), r.prompt().end());
  g.resumed_tokens = r.resumed_tokens();
  const pb::Sampling& s = r.sampling();
  SamplingParams& p = g.sampling;
  p.temperature = s.temperature();
  p.top_p = s.top_p();
  p.top_k = s.top_k();
  p.min_p = s.min_p();
  p.seed = s.seed();
  p.presence_penalty = s.presence_penalty();
  p.frequency_penalty = s.frequency_penalty();
  p.repetition_penalty = s.repetition_penalty();
  for (const pb::LogitBias& b : s.logit_bias()) p.logit_bias.emplace_back(b.token(), b.bias());
  p.stop_token_ids.assign(s.stop_token_ids().begin(), s.stop_token_ids().end());
  p.max_tokens = s.max_tokens();
  p.logprobs = s.logprobs();
  p.top_logprobs = s.top_logprobs();
  if (s.has_prompt_logprobs()) p.prompt_logprobs = s.prompt_logprobs();
  if (s.has_speculative_tokens()) {
    if (s.speculative_tokens() > kMaxSpeculativeTokens)
      return Status::error("request " + std::to_string(r.id()) + ": speculative_tokens " +
                           std::to_string(s.speculative_tokens()) + " above " +
                           std::to_string(kMaxSpeculativeTokens));
    g.speculative_tokens = s.speculative_tokens();
  }
  for (const pb::TokenSequence& seq : s.allowed_outputs())
    p.allowed_outputs.emplace_back(seq.tokens().begin(), seq.tokens().end());
  if (!s.constraint_kind().empty()) {
    Result<OutputConstraintKind> kind = parse_output_constraint_kind(s.constraint_kind());
    if (!kind) return Status::error("request " + std::to_string(r.id()) + ": " + kind.message());
    p.constraint = *kind;
    p.constraint_source = s.constraint_source();
  }
  // What EngineCore::validate does not check because the router's own parser guarantees it.
  if (!(p.temperature >= 0.0f) || !(p.top_p > 0.0f && p.top_p <= 1.0f) ||
      !(p.min_p >= 0.0f && p.min_p <= 1.0f) || !(p.repetition_penalty > 0.0f))
    return Status::error("request " + std::to_string(r.id()) +
                         ": sampling parameters out of range");
  if (p.top_logprobs > 20) return Status::error("top_logprobs above 20");
  return g;
}

pb::Finish to_proto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return pb::FINISH_NONE;
    case FinishReason::kStop:
      return pb::FINISH_STOP;
    case FinishReason::kLength:
      return pb::FINISH_LENGTH;
    case FinishReason::kCancelled:
      return pb::FINISH_CANCELLED;
    case FinishReason::kError:
      return pb::FINISH_ERROR;
  }
  return pb::FINISH_ERROR;
}

void to_proto(const GenerationEvent& e, uint64_t router_id, uint32_t token_index, pb::Event& out) {
  out.set_id(router_id);
  out.set_token(e.token);
  out.set_token_index(token_index);
  out.set_logprob(e.logprob);
  for (const TokenLogprob& t : e.top_logprobs) {
    pb::TokenLogprob* p = out.add_top_logprobs();
    p->set_token(t.token);
    p->set_logprob(t.logprob);
  }
  for (const PromptTokenLogprobs& pl : e.prompt_logprobs) {
    pb::PromptLogprob* p = out.add_prompt_logprobs();
    p->set_token(pl.token);
    p->set_logprob(pl.logprob);
    p->set_rank(pl.rank);
    for (const TokenLogprob& t : pl.top) {
      pb::TokenLogprob* tp = p->add_top();
      tp->set_token(t.token);
      tp->set_logprob(t.logprob);
    }
  }
  out.set_finish(to_proto(e.finish));
  out.set_cached_tokens(e.cached_tokens);
  out.set_queue_seconds(e.queue_seconds);
  out.set_error(e.error);
}

void to_proto(const EngineStats& s, uint32_t page_tokens, pb::StatsResponse& out) {
  out.set_running(s.running);
  out.set_waiting(s.waiting);
  out.set_pages_used(s.pages_used);
  out.set_pages_free(s.pages_free + s.pages_evictable);
  out.set_pages_evictable(s.pages_evictable);
  out.set_pages_cached(s.pages_cached);
  out.set_page_tokens(page_tokens);
  out.set_preemptions(s.preemptions);
  out.set_steps(s.steps);
  out.set_step_seconds_sum(s.step_seconds);
  to_proto(s.batch_size, *out.mutable_batch_size());
  to_proto(s.step_time, *out.mutable_step_seconds());
  to_proto(s.step_token_counts, *out.mutable_step_tokens());
  for (const std::vector<uint64_t>& layer : s.expert_selections) {
    pb::LayerExperts* l = out.add_expert_selections();
    for (uint64_t n : layer) l->add_selections(n);
  }
  if (s.kv_disk_writes + s.kv_disk_hits + s.kv_disk_ignored + s.kv_disk_dropped > 0) {
    pb::KvDiskCounts* d = out.mutable_kv_disk();
    d->set_hits(s.kv_disk_hits);
    d->set_writes(s.kv_disk_writes);
    d->set_evictions(s.kv_disk_evictions);
    d->set_ignored(s.kv_disk_ignored);
    d->set_dropped(s.kv_disk_dropped);
  }
  if (s.step_graphs.captures > 0) {
    pb::StepGraphCounts* g = out.mutable_step_graphs();
    g->set_captures(s.step_graphs.captures);
    g->set_replays(s.step_graphs.replays);
  }
  if (s.speculative.drafts > 0) {
    pb::SpeculativeCounts* c = out.mutable_speculative();
    c->set_num_drafts(s.speculative.drafts);
    c->set_num_draft_tokens(s.speculative.draft_tokens);
    c->set_num_accepted_tokens(s.speculative.accepted_tokens);
    for (uint64_t n : s.speculative.accepted_per_position) c->add_num_accepted_tokens_per_pos(n);
  }
  if (s.group.exchanges > 0 || s.group.joined_steps > 0) {
    pb::GroupTraffic* g = out.mutable_group();
    g->set_dispatch_bytes(s.group.dispatch_bytes);
    g->set_combine_bytes(s.group.combine_bytes);
    g->set_exchanges(s.group.exchanges);
    g->set_joined_steps(s.group.joined_steps);
    g->set_dispatch_seconds(s.group.dispatch_seconds);
    g->set_expert_seconds(s.group.expert_seconds);
    g->set_combine_seconds(s.group.combine_seconds);
    g->set_overlapped_seconds(s.group.overlapped_seconds);
  }
}

}  // namespace v4::worker_grpc
