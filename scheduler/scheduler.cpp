#include "scheduler/scheduler.h"

#include <algorithm>
#include <cassert>

namespace v4 {

// The plan under construction plus what is left of this step's budgets.
struct Scheduler::StepBuilder {
  StepPlan plan;
  uint64_t token_budget = 0;
  bool preempted_any = false;
  bool drafts = true;  // SchedulerConfig::speculative_max_batch allows draft room this step

  ScheduledSequence* find(RequestId id) {
    for (ScheduledSequence& s : plan.sequences)
      if (s.id == id) return &s;
    return nullptr;
  }
};

Scheduler::Scheduler(const SchedulerConfig& config)
    : config_(config), allocator_(config.total_pages) {
  assert(config.page_tokens > 0 && config.page_tokens % 128 == 0);
  assert(config.max_batch_tokens > 0 && config.max_seqs > 0);
}

Status Scheduler::add(RequestId id, std::vector<int32_t> prompt, bool reuse_prefix,
                      uint32_t speculative_tokens) {
  if (prompt.empty()) return Status::error("request " + std::to_string(id) + ": empty prompt");
  if (records_.count(id)) return Status::error("request " + std::to_string(id) + " already exists");
  records_[id].tokens = std::move(prompt);
  records_[id].reuse_prefix = reuse_prefix;
  records_[id].speculative_tokens = speculative_tokens;
  waiting_.push_back(id);
  return Status::ok();
}

bool Scheduler::cancel(RequestId id) {
  auto it = records_.find(id);
  if (it == records_.end()) return false;
  free_pages(it->second, freed_since_last_step_);
  std::erase(running_, id);
  std::erase(waiting_, id);
  records_.erase(it);
  released_since_last_step_.push_back(id);
  return true;
}

uint32_t Scheduler::pages_for(uint64_t tokens) const {
  return static_cast<uint32_t>((tokens + config_.page_tokens - 1) / config_.page_tokens);
}

uint64_t Scheduler::chunk(const SequenceRecord& r, uint64_t budget) const {
  uint64_t n = std::min<uint64_t>(r.tokens.size() - r.computed, budget);
  // Spec §4.4: the state a resumed sequence needs exists only at the end of a forward call, so
  // with prefix caching a chunk never runs past a page boundary (results are chunking-invariant).
  if (config_.prefix_caching)
    n = std::min<uint64_t>(n, config_.page_tokens - r.computed % config_.page_tokens);
  return n;
}

// Cached pages with no holder count as free: take_page() evicts them when the free list is empty.
std::optional<PageId> Scheduler::take_page() {
  if (std::optional<PageId> p = allocator_.allocate()) return p;
  PrefixPageKey key;
  std::optional<PageId> p = prefix_.evict(store_ ? &key : nullptr);
  if (p) {
    evicted_since_last_step_.push_back(*p);
    if (store_) spilled_since_last_step_.push_back({*p, std::move(key)});
    ++prefix_evictions_;
  }
  return p;
}

// All-or-nothing: on failure the pages taken so far go back, so a failed attempt leaks nothing.
bool Scheduler::grow_pages(SequenceRecord& r, uint64_t tokens, std::vector<PageId>* added) {
  const uint32_t need = pages_for(tokens);
  if (need <= r.pages.size()) return true;
  if (available_pages() < need - r.pages.size()) return false;
  while (r.pages.size() < need) {
    const PageId p = *take_page();
    r.pages.push_back(p);
    if (added) added->push_back(p);
  }
  return true;
}

void Scheduler::free_pages(SequenceRecord& r, std::vector<PageId>& freed) {
  for (PageId p : r.pages) {
    if (prefix_.contains(p)) continue;
    allocator_.release(p);
    freed.push_back(p);
  }
  // Cached pages go to the LRU list tail first, so a prefix is evicted from its end and its
  // first pages, shared by the most prompts, stay longest (vLLM's order).
  for (auto it = r.pages.rbegin(); it != r.pages.rend(); ++it)
    if (prefix_.contains(*it)) prefix_.release(*it);
  r.pages.clear();
}

uint64_t Scheduler::page_hash(SequenceRecord& r, size_t page) {
  const uint32_t pt = config_.page_tokens;
  while (r.hashes.size() <= page) {
    const size_t i = r.hashes.size();
    const uint64_t parent = i == 0 ? 0 : r.hashes[i - 1];
    r.hashes.push_back(PrefixCache::chain_hash(parent, {r.tokens.data() + i * pt, pt}));
  }
  return r.hashes[page];
}

std::optional<PageId> Scheduler::cached_page(SequenceRecord& r, size_t page) {
  const uint32_t pt = config_.page_tokens;
  const uint64_t hash = page_hash(r, page);
  return prefix_.find(hash, page == 0 ? 0 : r.hashes[page - 1], {r.tokens.data() + page * pt, pt});
}

// The longest run of cached pages from the stream's start, leaving at least one token to compute
// so the first sampled token has logits; a page missing in memory may come from the store.
// `lookups`: the full pages that could have hit.
std::vector<std::optional<PageId>> Scheduler::lookup_prefix(SequenceRecord& r, uint32_t* lookups) {
  const size_t max_pages = (r.tokens.size() - 1) / config_.page_tokens;
  const uint32_t pt = config_.page_tokens;
  *lookups = static_cast<uint32_t>(max_pages);
  std::vector<std::optional<PageId>> hit;
  for (size_t i = 0; i < max_pages; ++i) {
    if (std::optional<PageId> p = cached_page(r, i)) {
      hit.push_back(*p);
      continue;
    }
    if (!store_ || !store_->find(page_hash(r, i), i == 0 ? 0 : r.hashes[i - 1],
                                 {r.tokens.data() + i * pt, pt}, (i + 1) * uint64_t{pt}))
      break;
    hit.push_back(std::nullopt);
  }
  return hit;
}

// Gives page `page` of r a page id and registers it as held by r; the worker fills it from the
// store before the step runs.
void Scheduler::load_stored_page(SequenceRecord& r, size_t page, StepBuilder& step) {
  const uint32_t pt = config_.page_tokens;
  const PageId p = *take_page();
  const bool inserted = prefix_.insert(p, page_hash(r, page), page == 0 ? 0 : r.hashes[page - 1],
                                       {r.tokens.data() + page * pt, pt});
  assert(inserted);
  (void)inserted;
  r.pages.push_back(p);
  step.plan.loaded_pages.push_back({p, r.hashes[page]});
  ++prefix_store_hits_;
}

// After the step that filled page `page` of r: share it unless an equal page already is.
void Scheduler::register_page(SequenceRecord& r, size_t page) {
  if (prefix_.contains(r.pages[page]) || cached_page(r, page)) return;
  const uint32_t pt = config_.page_tokens;
  prefix_.insert(r.pages[page], page_hash(r, page), page == 0 ? 0 : r.hashes[page - 1],
                 {r.tokens.data() + page * pt, pt});
}

uint32_t Scheduler::flush_prefix_cache() {
  uint32_t n = 0;
  PrefixPageKey key;
  while (std::optional<PageId> p = prefix_.evict(store_ ? &key : nullptr)) {
    allocator_.release(*p);
    evicted_since_last_step_.push_back(*p);
    if (store_) spilled_since_last_step_.push_back({*p, std::move(key)});
    ++n;
  }
  return n;
}

StepPlan Scheduler::take_page_changes() {
  StepPlan plan;
  plan.released = std::move(released_since_last_step_);
  plan.freed_pages = std::move(freed_since_last_step_);
  plan.evicted_pages = std::move(evicted_since_last_step_);
  plan.spilled_pages = std::move(spilled_since_last_step_);
  released_since_last_step_.clear();
  freed_since_last_step_.clear();
  evicted_since_last_step_.clear();
  spilled_since_last_step_.clear();
  return plan;
}

// Preemption by recompute: the victim keeps its tokens (prompt and output so far) and rejoins
// the front of the queue; its KV state is rebuilt from position 0 when it is admitted again.
void Scheduler::preempt(RequestId victim, StepBuilder& step) {
  SequenceRecord& r = records_.at(victim);
  if (ScheduledSequence* s = step.find(victim)) {
    step.token_budget += s->tokens.size() + s->draft_room;
    std::erase_if(step.plan.sequences, [&](const ScheduledSequence& e) { return e.id == victim; });
  }
  free_pages(r, step.plan.freed_pages);
  r.computed = 0;
  std::erase(running_, victim);
  waiting_.push_front(victim);
  step.plan.preempted.push_back(victim);
  step.preempted_any = true;
  ++preemptions_;
}

ScheduledSequence Scheduler::make_entry(RequestId id, uint64_t n, std::vector<PageId> added) {
  SequenceRecord& r = records_.at(id);
  ScheduledSequence s;
  s.id = id;
  s.first_position = r.computed;
  s.tokens.assign(r.tokens.begin() + static_cast<std::ptrdiff_t>(r.computed),
                  r.tokens.begin() + static_cast<std::ptrdiff_t>(r.computed + n));
  s.pages = r.pages;
  s.new_pages = std::move(added);
  s.samples = r.computed + n == r.tokens.size();
  const uint64_t end = r.computed + n;
  // A snapshot only where this chunk fills a page no equal cached page already covers.
  if (config_.prefix_caching && end % config_.page_tokens == 0) {
    const size_t page = end / config_.page_tokens - 1;
    s.snapshot = !prefix_.contains(r.pages[page]) && !cached_page(r, page);
  }
  return s;
}

// Gives a running request n more tokens, preempting later-admitted requests (or, last, itself)
// until its pages fit. False when it was itself preempted.
bool Scheduler::schedule_running(RequestId id, uint64_t n, StepBuilder& step) {
  SequenceRecord& r = records_.at(id);
  std::vector<PageId> added;
  while (!grow_pages(r, r.computed + n, &added)) {
    const RequestId victim = running_.back();
    preempt(victim, step);
    if (victim == id) return false;
  }
  const uint32_t room = draft_room(r, n, step, &added);
  ScheduledSequence s = make_entry(id, n, std::move(added));
  if (s.samples && !s.snapshot) s.draft_room = room;
  step.token_budget -= n + s.draft_room;
  step.plan.sequences.push_back(std::move(s));
  return true;
}

// Drafts only extend a short sampling chunk (a decode, or the replay after a rejected draft):
// they never preempt anyone and fit in what is left of the token budget.
uint32_t Scheduler::draft_room(SequenceRecord& r, uint64_t n, const StepBuilder& step,
                               std::vector<PageId>* added) {
  if (r.speculative_tokens == 0 || !step.drafts || r.computed + n != r.tokens.size()) return 0;
  if (n > uint64_t{r.speculative_tokens} + 1 || step.token_budget <= n) return 0;
  const auto room =
      static_cast<uint32_t>(std::min<uint64_t>(r.speculative_tokens, step.token_budget - n));
  return grow_pages(r, r.computed + n + room, added) ? room : 0;
}

// FCFS: admit from the head of the queue while the head fits; never skip it. With prefix caching
// a request starting from position 0 first takes the cached pages of its prefix (spec §4.4).
void Scheduler::admit_waiting(StepBuilder& step) {
  while (!waiting_.empty() && step.token_budget > 0 && running_.size() < config_.max_seqs &&
         step.plan.sequences.size() < config_.max_seqs) {
    const RequestId id = waiting_.front();
    SequenceRecord& r = records_.at(id);
    std::vector<std::optional<PageId>> hit;
    uint32_t lookups = 0;
    if (config_.prefix_caching && r.reuse_prefix && r.computed == 0)
      hit = lookup_prefix(r, &lookups);
    // Hit pages nobody holds are counted in available_pages(); they are not free for new rows.
    // Pages coming from the store need fresh ids like new rows do.
    uint32_t idle_hits = 0, in_memory = 0;
    for (const std::optional<PageId>& p : hit) {
      in_memory += p ? 1 : 0;
      idle_hits += p && prefix_.idle(*p) ? 1 : 0;
    }
    const uint64_t start = hit.size() * uint64_t{config_.page_tokens};
    const uint64_t saved = r.computed;
    r.computed = start;
    const uint64_t n = chunk(r, step.token_budget);
    r.computed = saved;
    const uint32_t fresh = pages_for(start + n) - in_memory;
    if (available_pages() - idle_hits < fresh) return;
    // Acquired first, so taking ids for stored pages cannot evict them.
    for (const std::optional<PageId>& p : hit)
      if (p) prefix_.acquire(*p);
    prefix_hits_ += hit.size();
    prefix_misses_ += lookups - hit.size();
    r.pages.clear();
    for (size_t i = 0; i < hit.size(); ++i) {
      if (hit[i])
        r.pages.push_back(*hit[i]);
      else
        load_stored_page(r, i, step);
    }
    r.computed = start;
    std::vector<PageId> added;
    const bool grown = grow_pages(r, start + n, &added);
    assert(grown);
    (void)grown;
    waiting_.pop_front();
    running_.push_back(id);
    ScheduledSequence s = make_entry(id, n, std::move(added));
    s.cached_tokens.assign(r.tokens.begin(), r.tokens.begin() + static_cast<std::ptrdiff_t>(start));
    step.plan.sequences.push_back(std::move(s));
    step.token_budget -= n;
  }
}

StepPlan Scheduler::schedule() {
  StepBuilder step;
  step.token_budget = config_.max_batch_tokens;
  step.drafts =
      config_.speculative_max_batch == 0 || running_.size() <= config_.speculative_max_batch;
  step.plan.released = std::move(released_since_last_step_);
  step.plan.freed_pages = std::move(freed_since_last_step_);
  released_since_last_step_.clear();
  freed_since_last_step_.clear();
  // Decodes first (one token each): they hold pages already and finish requests soonest.
  for (bool decode : {true, false}) {
    for (size_t i = 0; i < running_.size(); ++i) {
      const RequestId id = running_[i];
      const SequenceRecord& r = records_.at(id);
      const uint64_t remaining = r.tokens.size() - r.computed;
      if ((remaining == 1) != decode || step.find(id)) continue;
      if (step.token_budget == 0 || step.plan.sequences.size() >= config_.max_seqs) break;
      const uint64_t n = chunk(r, step.token_budget);
      if (!schedule_running(id, n, step)) break;  // it was the last running request
      // Preemption removed requests behind i only, so i still indexes this request.
    }
  }
  // No admissions in a step that had to preempt: the freed pages go to the preempted first.
  if (!step.preempted_any) admit_waiting(step);
  // Evictions happen while block tables grow, so they are collected last.
  step.plan.evicted_pages = std::move(evicted_since_last_step_);
  step.plan.spilled_pages = std::move(spilled_since_last_step_);
  evicted_since_last_step_.clear();
  spilled_since_last_step_.clear();
  return std::move(step.plan);
}

void Scheduler::update(const StepPlan& plan, const StepOutput& output) {
  for (const ScheduledSequence& s : plan.sequences) {
    auto it = records_.find(s.id);
    if (it == records_.end()) continue;  // cancelled while the step ran
    SequenceRecord& r = it->second;
    r.computed += s.tokens.size();
    // The worker snapshotted the state at this page's end: the page is now shareable.
    if (s.snapshot) register_page(r, r.computed / config_.page_tokens - 1);
  }
  for (const SampledToken& t : output.sampled) {
    auto it = records_.find(t.id);
    if (it == records_.end()) continue;
    if (t.in_kv) ++it->second.computed;
    if (t.finished) {
      free_pages(it->second, freed_since_last_step_);
      std::erase(running_, t.id);
      records_.erase(it);
      released_since_last_step_.push_back(t.id);
    } else {
      it->second.tokens.push_back(t.token);
    }
  }
  for (const KvRollback& back : output.rolled_back) {
    auto it = records_.find(back.id);
    if (it != records_.end()) it->second.computed = std::min(it->second.computed, back.computed);
  }
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  s.running = static_cast<uint32_t>(running_.size());
  s.waiting = static_cast<uint32_t>(waiting_.size());
  s.pages_evictable = prefix_.evictable();
  s.pages_used = allocator_.used_count() - s.pages_evictable;
  s.pages_free = allocator_.free_count();
  s.preemptions = preemptions_;
  s.pages_cached = prefix_.cached();
  s.prefix_hits = prefix_hits_;
  s.prefix_misses = prefix_misses_;
  s.prefix_evictions = prefix_evictions_;
  s.prefix_store_hits = prefix_store_hits_;
  return s;
}

}  // namespace v4
