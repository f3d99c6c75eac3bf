#include "router/grpc/router_proto.h"

#include <algorithm>

namespace v4::router_grpc {
namespace {

void add_histogram(const pb::Histogram& h, EngineHistogram& total) {
  if (total.counts.empty()) {
    total = from_proto(h);
    return;
  }
  if (static_cast<size_t>(h.counts_size()) != total.counts.size()) return;
  for (int i = 0; i < h.counts_size(); ++i) total.counts[static_cast<size_t>(i)] += h.counts(i);
  total.sum += h.sum();
}

}  // namespace

void to_proto(const EngineRequest& r, uint64_t id, uint32_t resumed, pb::SubmitRequest& out) {
  out.set_id(id);
  out.mutable_prompt()->Assign(r.prompt.begin(), r.prompt.end());
  out.set_resumed_tokens(resumed);
  const EngineSampling& s = r.sampling;
  pb::Sampling* p = out.mutable_sampling();
  p->set_temperature(s.temperature);
  p->set_top_p(s.top_p);
  p->set_top_k(s.top_k);
  p->set_min_p(s.min_p);
  p->set_seed(s.seed);
  p->set_presence_penalty(s.presence_penalty);
  p->set_frequency_penalty(s.frequency_penalty);
  p->set_repetition_penalty(s.repetition_penalty);
  for (const auto& [token, bias] : s.logit_bias) {
    pb::LogitBias* b = p->add_logit_bias();
    b->set_token(token);
    b->set_bias(bias);
  }
  p->mutable_stop_token_ids()->Assign(s.stop_token_ids.begin(), s.stop_token_ids.end());
  p->set_max_tokens(s.max_tokens);
  p->set_logprobs(s.logprobs);
  p->set_top_logprobs(s.top_logprobs);
  // A continuation's prompt scores were sent with its first token.
  if (s.prompt_logprobs && resumed == 0) p->set_prompt_logprobs(*s.prompt_logprobs);
  for (const std::vector<int32_t>& seq : s.allowed_outputs)
    p->add_allowed_outputs()->mutable_tokens()->Assign(seq.begin(), seq.end());
  p->set_constraint_kind(output_constraint_name(s.constraint));
  p->set_constraint_source(s.constraint_source);
  if (s.speculative_tokens) p->set_speculative_tokens(*s.speculative_tokens);
}

EngineFinish from_proto(pb::Finish f) {
  switch (f) {
    case pb::FINISH_NONE:
      return EngineFinish::kNone;
    case pb::FINISH_STOP:
      return EngineFinish::kStop;
    case pb::FINISH_LENGTH:
      return EngineFinish::kLength;
    case pb::FINISH_CANCELLED:
      return EngineFinish::kCancelled;
    default:
      return EngineFinish::kError;
  }
}

EngineEvent from_proto(const pb::Event& e) {
  EngineEvent out;
  out.token = e.token();
  out.logprob = e.logprob();
  for (const pb::TokenLogprob& t : e.top_logprobs())
    out.top_logprobs.push_back({t.token(), t.logprob()});
  for (const pb::PromptLogprob& p : e.prompt_logprobs()) {
    EnginePromptLogprob& entry = out.prompt_logprobs.emplace_back();
    entry.token = p.token();
    entry.logprob = p.logprob();
    entry.rank = p.rank();
    for (const pb::TokenLogprob& t : p.top()) entry.top.push_back({t.token(), t.logprob()});
  }
  out.finish = from_proto(e.finish());
  out.cached_tokens = e.cached_tokens();
  out.queue_seconds = e.queue_seconds();
  out.error = e.error();
  if (out.finish == EngineFinish::kError && out.error.empty()) out.error = "worker error";
  return out;
}

EngineHistogram from_proto(const pb::Histogram& h) {
  EngineHistogram out;
  out.bounds.assign(h.bounds().begin(), h.bounds().end());
  out.counts.assign(h.counts().begin(), h.counts().end());
  out.sum = h.sum();
  return out;
}

void add_stats(const pb::StatsResponse& s, EngineSnapshot& t) {
  t.running += s.running();
  t.waiting += s.waiting();
  t.pages_used += s.pages_used();
  t.pages_free += s.pages_free();
  t.pages_evictable += s.pages_evictable();
  t.preemptions += s.preemptions();
  t.prefix_queries += s.prefix_queries();
  t.prefix_hits += s.prefix_hits();
  t.kv_disk_hits += s.kv_disk().hits();
  t.kv_disk_writes += s.kv_disk().writes();
  t.kv_disk_evictions += s.kv_disk().evictions();
  t.kv_disk_ignored += s.kv_disk().ignored();
  t.kv_disk_dropped += s.kv_disk().dropped();
  t.step_graph_captures += s.step_graphs().captures();
  t.step_graph_replays += s.step_graphs().replays();
  const pb::SpeculativeCounts& spec = s.speculative();
  t.spec_num_drafts += spec.num_drafts();
  t.spec_num_draft_tokens += spec.num_draft_tokens();
  t.spec_num_accepted_tokens += spec.num_accepted_tokens();
  if (t.spec_accepted_per_position.size() <
      static_cast<size_t>(spec.num_accepted_tokens_per_pos_size()))
    t.spec_accepted_per_position.resize(
        static_cast<size_t>(spec.num_accepted_tokens_per_pos_size()));
  for (int i = 0; i < spec.num_accepted_tokens_per_pos_size(); ++i)
    t.spec_accepted_per_position[static_cast<size_t>(i)] += spec.num_accepted_tokens_per_pos(i);
  const pb::GroupTraffic& g = s.group();
  t.group.dispatch_bytes += g.dispatch_bytes();
  t.group.combine_bytes += g.combine_bytes();
  t.group.exchanges += g.exchanges();
  t.group.joined_steps += g.joined_steps();
  t.group.dispatch_seconds += g.dispatch_seconds();
  t.group.expert_seconds += g.expert_seconds();
  t.group.combine_seconds += g.combine_seconds();
  t.group.overlapped_seconds += g.overlapped_seconds();
  add_histogram(s.batch_size(), t.batch_size);
  add_histogram(s.step_seconds(), t.step_seconds);
  add_histogram(s.step_tokens(), t.step_tokens);
  if (t.expert_selections.size() < static_cast<size_t>(s.expert_selections_size()))
    t.expert_selections.resize(static_cast<size_t>(s.expert_selections_size()));
  for (int l = 0; l < s.expert_selections_size(); ++l) {
    std::vector<uint64_t>& layer = t.expert_selections[static_cast<size_t>(l)];
    const auto& from = s.expert_selections(l).selections();
    if (layer.size() < static_cast<size_t>(from.size()))
      layer.resize(static_cast<size_t>(from.size()));
    for (int e = 0; e < from.size(); ++e) layer[static_cast<size_t>(e)] += from[e];
  }
}

}  // namespace v4::router_grpc
