#include "scheduler/scheduler.h"

#include <algorithm>
#include <cassert>

namespace v4 {

// The plan under construction plus what is left of this step's budgets.
struct Scheduler::StepBuilder {
  StepPlan plan;
  uint64_t token_budget = 0;
  bool preempted_any = false;

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

Status Scheduler::add(RequestId id, std::vector<int32_t> prompt) {
  if (prompt.empty()) return Status::error("request " + std::to_string(id) + ": empty prompt");
  if (records_.count(id)) return Status::error("request " + std::to_string(id) + " already exists");
  records_[id].tokens = std::move(prompt);
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

// All-or-nothing: on failure the pages taken so far go back, so a failed attempt leaks nothing.
bool Scheduler::grow_pages(SequenceRecord& r, uint64_t tokens, std::vector<PageId>* added) {
  const uint32_t need = pages_for(tokens);
  if (need <= r.pages.size()) return true;
  if (allocator_.free_count() < need - r.pages.size()) return false;
  while (r.pages.size() < need) {
    const PageId p = *allocator_.allocate();
    r.pages.push_back(p);
    if (added) added->push_back(p);
  }
  return true;
}

void Scheduler::free_pages(SequenceRecord& r, std::vector<PageId>& freed) {
  for (PageId p : r.pages) {
    allocator_.release(p);
    freed.push_back(p);
  }
  r.pages.clear();
}

// Preemption by recompute: the victim keeps its tokens (prompt and output so far) and rejoins
// the front of the queue; its KV state is rebuilt from position 0 when it is admitted again.
void Scheduler::preempt(RequestId victim, StepBuilder& step) {
  SequenceRecord& r = records_.at(victim);
  if (ScheduledSequence* s = step.find(victim)) {
    step.token_budget += s->tokens.size();
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

ScheduledSequence Scheduler::make_entry(RequestId id, uint64_t n, std::vector<PageId> added) const {
  const SequenceRecord& r = records_.at(id);
  ScheduledSequence s;
  s.id = id;
  s.first_position = r.computed;
  s.tokens.assign(r.tokens.begin() + static_cast<std::ptrdiff_t>(r.computed),
                  r.tokens.begin() + static_cast<std::ptrdiff_t>(r.computed + n));
  s.pages = r.pages;
  s.new_pages = std::move(added);
  s.samples = r.computed + n == r.tokens.size();
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
  step.plan.sequences.push_back(make_entry(id, n, std::move(added)));
  step.token_budget -= n;
  return true;
}

// FCFS: admit from the head of the queue while the head fits; never skip it.
void Scheduler::admit_waiting(StepBuilder& step) {
  while (!waiting_.empty() && step.token_budget > 0 && running_.size() < config_.max_seqs &&
         step.plan.sequences.size() < config_.max_seqs) {
    const RequestId id = waiting_.front();
    SequenceRecord& r = records_.at(id);
    const uint64_t n = std::min<uint64_t>(r.tokens.size() - r.computed, step.token_budget);
    std::vector<PageId> added;
    if (!grow_pages(r, r.computed + n, &added)) return;
    waiting_.pop_front();
    running_.push_back(id);
    step.plan.sequences.push_back(make_entry(id, n, std::move(added)));
    step.token_budget -= n;
  }
}

StepPlan Scheduler::schedule() {
  StepBuilder step;
  step.token_budget = config_.max_batch_tokens;
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
      const uint64_t n = std::min<uint64_t>(remaining, step.token_budget);
      if (!schedule_running(id, n, step)) break;  // it was the last running request
      // Preemption removed requests behind i only, so i still indexes this request.
    }
  }
  // No admissions in a step that had to preempt: the freed pages go to the preempted first.
  if (!step.preempted_any) admit_waiting(step);
  return std::move(step.plan);
}

void Scheduler::update(const StepPlan& plan, const StepOutput& output) {
  for (const ScheduledSequence& s : plan.sequences) {
    auto it = records_.find(s.id);
    if (it == records_.end()) continue;  // cancelled while the step ran
    it->second.computed += s.tokens.size();
  }
  for (const SampledToken& t : output.sampled) {
    auto it = records_.find(t.id);
    if (it == records_.end()) continue;
    if (t.finished) {
      free_pages(it->second, freed_since_last_step_);
      std::erase(running_, t.id);
      records_.erase(it);
      released_since_last_step_.push_back(t.id);
    } else {
      it->second.tokens.push_back(t.token);
    }
  }
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  s.running = static_cast<uint32_t>(running_.size());
  s.waiting = static_cast<uint32_t>(waiting_.size());
  s.pages_used = allocator_.used_count();
  s.pages_free = allocator_.free_count();
  s.preemptions = preemptions_;
  return s;
}

}  // namespace v4
