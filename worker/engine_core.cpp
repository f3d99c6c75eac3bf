#include "worker/engine_core.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace v4 {

Result<uint32_t> EngineCore::pages_for_budget(const V4Config& c, const EngineOptions& o) {
  if (o.total_pages) return o.total_pages;
  const uint64_t fixed = uint64_t{o.max_seqs} * PagedSequenceKv::fixed_bytes(c, o.max_batch_tokens);
  uint64_t page = PagedKvCache::page_bytes(c, o.page_tokens, o.storage);
  // A cached page may carry the state snapshot at its end (spec §4.4: raw window and carry,
  // ≈11.6 MiB for the full model, the size of a sequence's fixed state without chunk room).
  if (o.prefix_caching) page += PagedSequenceKv::fixed_bytes(c, 0);
  if (o.kv_memory_bytes <= fixed || (o.kv_memory_bytes - fixed) / page == 0) {
    // In MiB, the unit of the --kv-memory flag.
    auto mib = [](uint64_t bytes) {
      char text[32];
      std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / 1048576.0);
      return std::string(text);
    };
    const uint64_t least = (fixed + page + (uint64_t{1} << 20) - 1) >> 20;
    return Status::error("--kv-memory " + mib(o.kv_memory_bytes) +
                         " is too small: the fixed state of " + std::to_string(o.max_seqs) +
                         " sequences needs " + mib(fixed) + " plus one page of " + mib(page) +
                         "; give at least " + std::to_string(least) + " (MiB) or lower --max-seqs");
  }
  return static_cast<uint32_t>((o.kv_memory_bytes - fixed) / page);
}

SchedulerConfig EngineCore::scheduler_config(const V4Config& c, const EngineOptions& o) {
  Result<uint32_t> pages = pages_for_budget(c, o);
  SchedulerConfig s;
  s.page_tokens = o.page_tokens;
  s.total_pages = pages ? *pages : 0u;
  s.max_batch_tokens = o.max_batch_tokens;
  s.max_seqs = o.max_seqs;
  s.prefix_caching = o.prefix_caching;
  s.speculative_max_batch = o.speculative_max_batch;
  return s;
}

EngineCore::EngineCore(const V4Weights& weights, Backend& backend, const EngineOptions& options,
                       StepGroup* group, ExpertDispatcher* experts)
    : options_(options),
      group_(group),
      n_vocab_(weights.config.n_vocab),
      scheduler_(scheduler_config(weights.config, options)),
      worker_(weights, backend,
              {{options.page_tokens, scheduler_.config().total_pages, options.storage},
               options.max_batch_tokens,
               options.max_context,
               {options.prefix_caching ? options.kv_disk_dir : std::string(), options.kv_disk_bytes,
                options.model_identity},
               options.vocabulary,
               options.select_candidates,
               options.step_graphs,
               options.graph_positions,
               options.two_micro_batches},
              group ? &group->dispatcher() : experts) {
  totals_.page_bytes = worker_.cache().page_bytes();
  // The MTP block's MoE would run outside the group's lockstep exchanges: no drafts in a group.
  if (group) worker_.set_draft_source(nullptr);
  scheduler_.set_page_store(worker_.disk_store());
  if (options.capture_graphs) capture_graphs_at_start();
}

// Decode-step recordings before serving (V4Forward::capture_decode_graphs): a speed-up only,
// so a failure is said and serving goes on, recording shapes on first use.
void EngineCore::capture_graphs_at_start() {
  Result<DecodeGraphCapture> got =
      worker_.capture_decode_graphs(options_.max_seqs, options_.graph_capture_seconds);
  if (!got) {
    spdlog::warn("decode-step graphs not recorded at start: {}", got.message());
    return;
  }
  const DecodeGraphCapture& c = *got;
  totals_.start_graphs = c;
  if (c.batch_sizes.empty()) {
    spdlog::info("decode-step graphs: none recorded at start ({})", c.stopped);
    return;
  }
  spdlog::info(
      "decode-step graphs: recorded {} of {} at start in {:.2f} s ({} batch sizes from {} to {}, "
      "{} sampling kinds, positions below {}){}{}",
      c.recorded, c.shapes, c.seconds, c.batch_sizes.size(), c.batch_sizes.back(),
      c.batch_sizes.front(), c.kinds, c.position_bound, c.stopped.empty() ? "" : "; ", c.stopped);
}

EngineCore::~EngineCore() {
  if (!worker_.disk_store()) return;
  scheduler_.flush_prefix_cache();
  (void)worker_.save_prefix_pages(scheduler_.take_page_changes());
}

Status EngineCore::validate(const GenerationRequest& r) const {
  if (r.prompt.empty()) return Status::error("empty prompt");
  if (r.prompt.size() >= options_.max_context) {
    return Status::error("prompt of " + std::to_string(r.prompt.size()) +
                         " tokens does not fit the context limit of " +
                         std::to_string(options_.max_context));
  }
  if (r.resumed_tokens >= r.prompt.size())
    return Status::error("a resumed request needs prompt tokens before its " +
                         std::to_string(r.resumed_tokens) + " output tokens");
  if (r.resumed_tokens >= r.sampling.max_tokens)
    return Status::error("a request resumed after " + std::to_string(r.resumed_tokens) +
                         " tokens has nothing left of max_tokens " +
                         std::to_string(r.sampling.max_tokens));
  if (r.resumed_tokens > 0 && r.sampling.prompt_logprobs)
    return Status::error("a resumed request cannot score its prompt");
  const uint64_t longest = std::min<uint64_t>(
      options_.max_context, r.prompt.size() - r.resumed_tokens + r.sampling.max_tokens);
  const uint64_t pages = (longest + options_.page_tokens - 1) / options_.page_tokens;
  if (pages > scheduler_.config().total_pages) {
    return Status::error("a request of up to " + std::to_string(longest) + " tokens needs " +
                         std::to_string(pages) + " KV pages; the budget holds " +
                         std::to_string(scheduler_.config().total_pages));
  }
  if (Status s = validate_output_constraint(r.sampling, options_.vocabulary.get()); !s) return s;
  if (r.speculative_tokens) {
    if (*r.speculative_tokens > kMaxSpeculativeTokens)
      return Status::error("speculative_tokens " + std::to_string(*r.speculative_tokens) +
                           " is above the most, " + std::to_string(kMaxSpeculativeTokens));
    if (*r.speculative_tokens > 0 && !worker_.has_draft_source())
      return Status::error(
          "speculative_tokens needs a model with an MTP block (and a worker outside a group)");
  }
  return validate_guided(r.sampling);
}

Status EngineCore::validate_guided(const SamplingParams& p) const {
  for (size_t i = 0; i < p.allowed_outputs.size(); ++i) {
    const std::vector<int32_t>& seq = p.allowed_outputs[i];
    // Every step samples a token, so an empty choice needs a stop token to be its output.
    if (seq.empty() && p.stop_token_ids.empty())
      return Status::error("allowed output " + std::to_string(i) + " is empty");
    for (int32_t t : seq) {
      if (t < 0 || static_cast<uint32_t>(t) >= n_vocab_) {
        return Status::error("allowed output " + std::to_string(i) + ": token id " +
                             std::to_string(t) + " outside the vocabulary of " +
                             std::to_string(n_vocab_));
      }
    }
  }
  if (!p.allowed_outputs.empty() && !p.stop_token_ids.empty()) {
    const int32_t end = p.stop_token_ids.front();
    if (end < 0 || static_cast<uint32_t>(end) >= n_vocab_)
      return Status::error("stop token id " + std::to_string(end) + " outside the vocabulary");
  }
  return Status::ok();
}

Status EngineCore::add(RequestId id, const GenerationRequest& r, Clock::time_point arrival) {
  if (Status s = validate(r); !s) return s;
  // Prompt logprobs need every prompt position computed, so such a request reuses no cached
  // prefix (vLLM does the same); its pages still enter the cache.
  // Without a draft source (a model without MTP) the server default means no drafts.
  const uint32_t speculative =
      worker_.has_draft_source() ? r.speculative_tokens.value_or(options_.speculative_tokens) : 0;
  if (Status s = scheduler_.add(id, r.prompt, !r.sampling.prompt_logprobs, speculative); !s)
    return s;
  worker_.add_request(id, r.sampling, r.prompt, r.resumed_tokens, speculative);
  admissions_[id] = Admission{arrival, std::nullopt, 0};
  next_id_ = std::max(next_id_, id + 1);
  return Status::ok();
}

Result<RequestId> EngineCore::add(const GenerationRequest& r) {
  const RequestId id = next_id_;
  if (Status s = add(id, r); !s) return s;
  return id;
}

std::optional<GenerationEvent> EngineCore::cancel(RequestId id) {
  if (!scheduler_.cancel(id)) return std::nullopt;
  GenerationEvent e;
  e.id = id;
  e.finish = FinishReason::kCancelled;
  stamp_first(e);
  return e;
}

// The first step that runs a request fixes its first-event fields; a preempted request that is
// admitted again (possibly with another prefix hit) keeps them.
void EngineCore::note_scheduled(const StepPlan& plan, Clock::time_point start) {
  for (const ScheduledSequence& s : plan.sequences) {
    auto it = admissions_.find(s.id);
    if (it == admissions_.end() || it->second.queue_seconds) continue;
    it->second.queue_seconds = std::chrono::duration<double>(start - it->second.arrival).count();
    it->second.cached_tokens = static_cast<uint32_t>(s.cached_tokens.size());
  }
}

void EngineCore::stamp_first(GenerationEvent& e) {
  auto it = admissions_.find(e.id);
  if (it == admissions_.end()) return;
  const Admission& a = it->second;
  e.cached_tokens = a.cached_tokens;
  e.queue_seconds = a.queue_seconds
                        ? *a.queue_seconds
                        : std::chrono::duration<double>(Clock::now() - a.arrival).count();
  admissions_.erase(it);
}

std::vector<GenerationEvent> EngineCore::step() {
  const Clock::time_point start = Clock::now();
  StepPlan plan = scheduler_.schedule();
  // In a group this rank runs the forward, tokens or none, when any rank has tokens.
  bool join_group_step = false;
  if (group_) {
    Result<uint64_t> total = group_->agree(plan.token_count());
    if (!total) throw GroupFailure(total.message());
    join_group_step = *total > 0;
  }
  last_step_joined_ = join_group_step;
  note_scheduled(plan, start);
  std::vector<GenerationEvent> events;
  Result<StepOutput> out = worker_.execute(plan, events, join_group_step);
  // The ranks' collectives no longer line up once one rank's step failed.
  if (!out && group_) throw GroupFailure("group step failed: " + out.message());
  if (!out) {
    // The forward failed: end this step's requests rather than retry them forever.
    events.clear();
    for (const ScheduledSequence& s : plan.sequences) {
      scheduler_.cancel(s.id);
      GenerationEvent e;
      e.id = s.id;
      e.finish = FinishReason::kError;
      e.error = out.message();
      stamp_first(e);
      events.push_back(std::move(e));
    }
    return events;
  }
  scheduler_.update(plan, *out);
  for (GenerationEvent& e : events) stamp_first(e);
  if (!plan.empty()) {
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    ++totals_.steps;
    totals_.step_tokens += plan.token_count();
    totals_.step_sequences += plan.sequences.size();
    totals_.step_seconds += seconds;
    totals_.batch_size.observe(static_cast<double>(plan.sequences.size()));
    totals_.step_time.observe(seconds);
    totals_.step_token_counts.observe(static_cast<double>(plan.token_count()));
  }
  return events;
}

EngineStats EngineCore::stats() const {
  EngineStats s = totals_;
  const SchedulerStats q = scheduler_.stats();
  s.running = q.running;
  s.waiting = q.waiting;
  s.pages_used = q.pages_used;
  s.pages_free = q.pages_free;
  s.pages_evictable = q.pages_evictable;
  s.preemptions = q.preemptions;
  s.pages_cached = q.pages_cached;
  s.prefix_hits = q.prefix_hits;
  s.prefix_misses = q.prefix_misses;
  s.prefix_evictions = q.prefix_evictions;
  const uint64_t lookups = q.prefix_hits + q.prefix_misses;
  s.prefix_hit_ratio =
      lookups ? static_cast<double>(q.prefix_hits) / static_cast<double>(lookups) : 0.0;
  s.prefix_snapshot_bytes = worker_.snapshot_bytes();
  s.kv_disk_hits = q.prefix_store_hits;
  if (const KvDiskStore* disk = worker_.disk_store()) {
    const KvDiskStats d = disk->stats();
    s.kv_disk_writes = d.writes;
    s.kv_disk_evictions = d.evictions;
    s.kv_disk_ignored = d.ignored;
    s.kv_disk_dropped = d.dropped;
    s.kv_disk_files = d.files;
    s.kv_disk_bytes = d.bytes;
  }
  const ForwardStats& forward = worker_.forward_stats();
  s.expert_selections = forward.expert_selections;
  s.step_graphs = forward.step_graphs;
  s.speculative = worker_.speculative_stats();
  if (group_) s.group = group_->traffic();
  return s;
}

}  // namespace v4
