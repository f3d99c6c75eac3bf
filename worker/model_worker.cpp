#include "worker/model_worker.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "worker/mtp_drafter.h"
#include "worker/prefix_page_spill.h"

namespace v4 {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "?";
}

namespace {

ForwardLimits forward_limits(const ModelWorkerOptions& o) {
  ForwardLimits l;
  l.max_tokens = o.max_chunk;  // a step holds at most max_chunk tokens (the token budget)
  l.max_context = o.max_context;
  l.step_graphs = o.step_graphs;
  l.graph_positions = o.graph_positions;
  l.two_micro_batches = o.two_micro_batches;
  return l;
}

}  // namespace

ModelWorker::ModelWorker(const V4Weights& weights, Backend& backend,
                         const ModelWorkerOptions& options, ExpertDispatcher* experts)
    : config_(weights.config),
      forward_(weights, backend, experts, forward_limits(options)),
      options_(options),
      cache_(weights.config, options.kv, backend) {
  speculative_.accepted_per_position.assign(kMaxSpeculativeTokens, 0);
  if (weights.mtp) drafter_ = std::make_unique<MtpDrafter>(forward_);
  if (options.disk.dir.empty()) return;
  Result<std::unique_ptr<KvDiskStore>> store =
      KvDiskStore::open(options.disk, kv_page_geometry(config_, cache_));
  // The store is a cache: without it the engine still serves, and says why.
  if (!store)
    spdlog::error("{}; running without it", store.message());
  else
    disk_ = std::move(*store);
}

Status ModelWorker::save_prefix_pages(const StepPlan& changes) {
  if (!disk_) return Status::ok();
  Status s = spill_prefix_pages(changes.spilled_pages, cache_, snapshots_, *disk_, true);
  disk_->flush();
  return s;
}

void ModelWorker::add_request(RequestId id, const SamplingParams& params,
                              std::span<const int32_t> prompt, uint32_t resumed,
                              uint32_t speculative_tokens) {
  RequestState state{
      RequestSampler(params, options_.vocabulary), nullptr, std::nullopt, 0, {}, 0, {}, 0, 0};
  state.speculative = std::min(speculative_tokens, kMaxSpeculativeTokens);
  state.sampler.resume(prompt.subspan(prompt.size() - resumed));
  if (params.prompt_logprobs)
    state.prompt_logprobs.emplace(std::vector<int32_t>(prompt.begin(), prompt.end()),
                                  *params.prompt_logprobs);
  sequences_.emplace(id, std::move(state));
}

FinishReason ModelWorker::finish_after(const RequestState& r, uint64_t position,
                                       int32_t token) const {
  const SamplingParams& p = r.sampler.params();
  if (std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) != p.stop_token_ids.end())
    return FinishReason::kStop;
  if (r.sampler.guided_complete()) return FinishReason::kStop;
  if (r.sampler.generated() >= p.max_tokens) return FinishReason::kLength;
  if (position + 1 >= options_.max_context) return FinishReason::kLength;
  return FinishReason::kNone;
}

GenerationEvent ModelWorker::token_event(RequestId id, RequestState& r, SampledChoice c,
                                         uint64_t position) {
  GenerationEvent e;
  e.id = id;
  e.token = c.token;
  e.logprob = c.logprob;
  e.top_logprobs = std::move(c.top_logprobs);
  if (r.prompt_logprobs) {
    e.prompt_logprobs = r.prompt_logprobs->take();
    r.prompt_logprobs.reset();
  }
  e.finish = finish_after(r, position, c.token);
  return e;
}

Result<StepOutput> ModelWorker::execute(const StepPlan& plan, std::vector<GenerationEvent>& events,
                                        bool join_group_step) {
  for (RequestId id : plan.released) {
    sequences_.erase(id);
    if (drafter_) drafter_->forget(id);
  }
  // Spilled pages leave before anything can overwrite them; loads come after every snapshot of a
  // reused page id is gone (step_plan.h).
  if (disk_) {
    if (Status st = spill_prefix_pages(plan.spilled_pages, cache_, snapshots_, *disk_, false); !st)
      return st;
  }
  for (PageId p : plan.freed_pages) snapshots_.erase(p);
  for (PageId p : plan.evicted_pages) snapshots_.erase(p);
  if (disk_) {
    if (Status st = load_prefix_pages(plan.loaded_pages, cache_, snapshots_, *disk_); !st)
      return st;
  }
  for (RequestId id : plan.preempted) {
    if (auto it = sequences_.find(id); it != sequences_.end()) it->second.kv.reset();
    if (drafter_) drafter_->forget(id);
  }
  std::vector<SequenceInput> inputs;
  inputs.reserve(plan.sequences.size());
  for (const ScheduledSequence& s : plan.sequences) {
    RequestState& r = sequences_.at(s.id);
    if (!r.kv) {
      r.kv = std::make_unique<PagedSequenceKv>(config_, cache_, options_.max_chunk);
    }
    if (!s.cached_tokens.empty() && r.kv->n_past() == 0) {
      // A prefix hit: resume from the snapshot stored with the last shared page (spec §4.4).
      const PageId last = s.pages[s.first_position / cache_.page_tokens() - 1];
      auto snap = snapshots_.find(last);
      if (snap == snapshots_.end() || snap->second.n_past != s.first_position) {
        return Status::error("request " + std::to_string(s.id) + ": no prefix snapshot for page " +
                             std::to_string(last));
      }
      if (Status st = r.kv->restore(snap->second); !st) return st;
    }
    if (r.kv->n_past() != s.first_position) {
      return Status::error("request " + std::to_string(s.id) + ": plan starts at " +
                           std::to_string(s.first_position) + " but its KV holds " +
                           std::to_string(r.kv->n_past()) + " tokens");
    }
    r.kv->set_pages(s.pages);
    r.sampler.observe(s.cached_tokens);
    r.sampler.observe(s.tokens);
    std::span<const int32_t> tokens = s.tokens;
    // A speculative request keeps every row's logits and HC state when it samples: its drafts
    // are verified row by row, and the HC states feed its drafter.
    const bool speculative = r.speculative > 0 && drafter_ && s.samples;
    if (speculative) {
      Result<std::span<const int32_t>> in = speculative_input(s.id, r, s);
      if (!in) return in.status();
      tokens = *in;
    }
    // Only a sequence still scoring its prompt pays for the output head at every position.
    const bool all_logits =
        speculative || (r.prompt_logprobs && r.prompt_logprobs->wants(s.first_position));
    // A sampled row that the backend can draw from, or choose the best tokens of, comes back
    // as that alone.
    std::optional<kernels::RowDrawParams> draw;
    uint32_t candidates = 0;
    if (options_.select_candidates && s.samples && !all_logits) {
      draw = r.sampler.row_draw();
      candidates = draw ? r.sampler.logprob_candidates() : r.sampler.candidates_needed();
    }
    // A chunk that neither samples nor scores its prompt needs no logits.
    const bool no_logits = !s.samples && !all_logits;
    inputs.push_back({r.kv.get(), tokens, all_logits, speculative, candidates,
                      r.sampler.wants_logprobs(), no_logits, draw});
  }
  StepOutput out;
  if (inputs.empty() && !join_group_step) return out;
  if (Status st = forward_.forward(inputs, forward_out_); !st) return st;
  const ForwardOutput* fwd = &forward_out_;
  for (const ScheduledSequence& s : plan.sequences) {
    if (!s.snapshot) continue;
    const PagedSequenceKv& kv = *sequences_.at(s.id).kv;
    Result<KvSnapshot> snap = kv.snapshot();
    if (!snap) return snap.status();
    snapshots_[s.pages[kv.n_past() / cache_.page_tokens() - 1]] = std::move(*snap);
  }
  score_prompts(plan, inputs, *fwd);
  if (Status st = sample_rows(plan, inputs, *fwd); !st) return st;
  size_t hidden_row = 0;  // the sequence's first row in fwd->hidden
  size_t row_choice = 0;  // the next of row_choices_
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    const ScheduledSequence& s = plan.sequences[i];
    const size_t hidden_first = hidden_row;
    if (inputs[i].keep_hidden) hidden_row += fwd->row_count[i];
    if (!s.samples) continue;
    RequestState& r = sequences_.at(s.id);
    if (inputs[i].keep_hidden) {
      if (Status st = sample_speculative(r, s, *fwd, i, hidden_first, out, events); !st) return st;
      continue;
    }
    SampledChoice c;
    const uint32_t k = inputs[i].top_candidates;
    const size_t first = i * fwd->candidate_k;
    if (inputs[i].draw) {
      c = r.sampler.sample_drawn(
          fwd->drawn_tokens[i], fwd->drawn_logits[i], {fwd->candidate_ids.data() + first, k},
          {fwd->candidate_logits.data() + first, k}, k > 0 ? fwd->log_normalizer[i] : 0.0);
    } else if (k > 0) {
      c = r.sampler.sample_candidates({&fwd->candidate_ids[first], k},
                                      {&fwd->candidate_logits[first], k}, fwd->log_normalizer[i]);
    } else {
      c = std::move(row_choices_[row_choice++]);
    }
    GenerationEvent e = token_event(s.id, r, std::move(c), s.first_position + s.tokens.size());
    out.sampled.push_back({s.id, e.token, e.finish != FinishReason::kNone});
    if (e.finish != FinishReason::kNone) sequences_.erase(s.id);
    events.push_back(std::move(e));
  }
  return out;
}

Status ModelWorker::sample_rows(const StepPlan& plan, std::span<const SequenceInput> inputs,
                                const ForwardOutput& fwd) {
  row_samplers_.clear();
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    const ScheduledSequence& s = plan.sequences[i];
    if (!s.samples) continue;
    const RequestState& r = sequences_.at(s.id);
    if (r.prompt_logprobs && !r.prompt_logprobs->complete()) {
      // Prompt tokens served from the prefix cache were never scored; the scheduler gives such
      // requests no prefix hits.
      return Status::error("request " + std::to_string(s.id) + ": prompt logprobs incomplete");
    }
    if (!inputs[i].keep_hidden && inputs[i].top_candidates == 0 && !inputs[i].draw) {
      row_samplers_.push_back(i);
    }
  }
  // A choice depends only on its request's row and sampler, so the requests choose side by side
  // (a whole-row draw is about a millisecond of host work per 129,280-token row).
  const size_t vocab = config_.n_vocab;
  row_choices_.resize(row_samplers_.size());
  forward_.backend().parallel_for(
      static_cast<int64_t>(row_samplers_.size()), [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          const size_t i = row_samplers_[static_cast<size_t>(j)];
          const size_t row = fwd.first_row[i] + fwd.row_count[i] - 1;
          row_choices_[static_cast<size_t>(j)] =
              sequences_.at(plan.sequences[i].id).sampler.sample({&fwd.logits[row * vocab], vocab});
        }
      });
  return Status::ok();
}

void ModelWorker::score_prompts(const StepPlan& plan, std::span<const SequenceInput> inputs,
                                const ForwardOutput& fwd) {
  const size_t vocab = config_.n_vocab;
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    if (!inputs[i].all_logits) continue;
    const ScheduledSequence& s = plan.sequences[i];
    RequestState& r = sequences_.at(s.id);
    if (!r.prompt_logprobs || !r.prompt_logprobs->wants(s.first_position)) continue;
    // A speculative request's draft rows follow its chunk's rows; they score no prompt token.
    const std::span<const float> rows(&fwd.logits[fwd.first_row[i] * vocab],
                                      s.tokens.size() * vocab);
    r.prompt_logprobs->add_rows(s.first_position, rows, vocab);
  }
}

size_t ModelWorker::snapshot_bytes() const {
  size_t n = 0;
  for (const auto& [page, snap] : snapshots_) n += snap.bytes();
  return n;
}

}  // namespace v4
