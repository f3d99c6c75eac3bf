#include "worker/engine_core.h"

#include <algorithm>

namespace v4 {

Result<uint32_t> EngineCore::pages_for_budget(const V4Config& c, const EngineOptions& o) {
  if (o.total_pages) return o.total_pages;
  const uint64_t fixed = uint64_t{o.max_seqs} * PagedSequenceKv::fixed_bytes(c, o.max_batch_tokens);
  uint64_t page = PagedKvCache::page_bytes(c, o.page_tokens, o.storage);
  // A cached page may carry the state snapshot at its end (spec §4.4: raw window and carry,
  // ≈11.6 MiB for the full model, the size of a sequence's fixed state without chunk room).
  if (o.prefix_caching) page += PagedSequenceKv::fixed_bytes(c, 0);
  if (o.kv_memory_bytes <= fixed || (o.kv_memory_bytes - fixed) / page == 0) {
    return Status::error("--kv-memory " + std::to_string(o.kv_memory_bytes) +
                         " bytes: the fixed state of " + std::to_string(o.max_seqs) +
                         " sequences needs " + std::to_string(fixed) + " plus one page of " +
                         std::to_string(page));
  }
  return static_cast<uint32_t>((o.kv_memory_bytes - fixed) / page);
}

SchedulerConfig EngineCore::scheduler_config(const V4Config& c, const EngineOptions& o) {
  Result<uint32_t> pages = pages_for_budget(c, o);
  return {o.page_tokens, pages ? *pages : 0u, o.max_batch_tokens, o.max_seqs, o.prefix_caching};
}

EngineCore::EngineCore(const V4Weights& weights, Backend& backend, const EngineOptions& options)
    : options_(options),
      scheduler_(scheduler_config(weights.config, options)),
      worker_(weights, backend,
              {{options.page_tokens, scheduler_.config().total_pages, options.storage},
               options.max_batch_tokens,
               options.max_context}) {
  totals_.page_bytes = worker_.cache().page_bytes();
}

Status EngineCore::validate(const GenerationRequest& r) const {
  if (r.prompt.empty()) return Status::error("empty prompt");
  if (r.prompt.size() >= options_.max_context) {
    return Status::error("prompt of " + std::to_string(r.prompt.size()) +
                         " tokens does not fit the context limit of " +
                         std::to_string(options_.max_context));
  }
  const uint64_t longest =
      std::min<uint64_t>(options_.max_context, r.prompt.size() + r.sampling.max_tokens);
  const uint64_t pages = (longest + options_.page_tokens - 1) / options_.page_tokens;
  if (pages > scheduler_.config().total_pages) {
    return Status::error("a request of up to " + std::to_string(longest) + " tokens needs " +
                         std::to_string(pages) + " KV pages; the budget holds " +
                         std::to_string(scheduler_.config().total_pages));
  }
  return Status::ok();
}

Status EngineCore::add(RequestId id, const GenerationRequest& r) {
  if (Status s = validate(r); !s) return s;
  if (Status s = scheduler_.add(id, r.prompt); !s) return s;
  worker_.add_request(id, r.sampling);
  next_id_ = std::max(next_id_, id + 1);
  return Status::ok();
}

Result<RequestId> EngineCore::add(const GenerationRequest& r) {
  const RequestId id = next_id_;
  if (Status s = add(id, r); !s) return s;
  return id;
}

bool EngineCore::cancel(RequestId id) { return scheduler_.cancel(id); }

std::vector<GenerationEvent> EngineCore::step() {
  const auto start = std::chrono::steady_clock::now();
  StepPlan plan = scheduler_.schedule();
  std::vector<GenerationEvent> events;
  Result<StepOutput> out = worker_.execute(plan, events);
  if (!out) {
    // The forward failed: end this step's requests rather than retry them forever.
    events.clear();
    for (const ScheduledSequence& s : plan.sequences) {
      scheduler_.cancel(s.id);
      events.push_back({s.id, -1, 0.0f, {}, FinishReason::kError});
    }
    return events;
  }
  scheduler_.update(plan, *out);
  if (!plan.empty()) {
    ++totals_.steps;
    totals_.step_tokens += plan.token_count();
    totals_.step_sequences += plan.sequences.size();
    totals_.step_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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
  s.preemptions = q.preemptions;
  s.pages_cached = q.pages_cached;
  s.prefix_hits = q.prefix_hits;
  s.prefix_misses = q.prefix_misses;
  s.prefix_evictions = q.prefix_evictions;
  const uint64_t lookups = q.prefix_hits + q.prefix_misses;
  s.prefix_hit_ratio =
      lookups ? static_cast<double>(q.prefix_hits) / static_cast<double>(lookups) : 0.0;
  s.prefix_snapshot_bytes = worker_.snapshot_bytes();
  return s;
}

}  // namespace v4
