#include "worker/engine.h"

#include <algorithm>
#include <exception>

namespace v4 {
namespace {

GenerationEvent final_event(RequestId id, FinishReason reason, std::string error = "") {
  GenerationEvent e;
  e.id = id;
  e.finish = reason;
  e.error = std::move(error);
  return e;
}

}  // namespace

Engine::Engine(const V4Weights& weights, const EngineOptions& options, unsigned threads)
    : Engine(weights, options, std::make_unique<CpuBackend>(threads)) {}

Engine::Engine(const V4Weights& weights, const EngineOptions& options,
               std::unique_ptr<Backend> backend)
    : Engine(weights, options, std::move(backend), EngineGroup{}) {}

Engine::Engine(const V4Weights& weights, const EngineOptions& options,
               std::unique_ptr<Backend> backend, EngineGroup group,
               std::unique_ptr<ExpertDispatcher> experts)
    : backend_(std::move(backend)),
      group_(std::move(group)),
      experts_(std::move(experts)),
      core_(weights, *backend_, options, group_.group.get(), experts_.get()),
      thread_([this] { loop(); }) {}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

Result<RequestId> Engine::submit(const GenerationRequest& request, TokenCallback callback) {
  const EngineCore::Clock::time_point arrival = EngineCore::Clock::now();
  // validate() reads only immutable configuration, so it is safe beside a running step.
  if (Status s = core_.validate(request); !s) return s;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!failure_.empty()) return Status::error("the engine stopped: " + failure_);
  const RequestId id = next_id_++;
  pending_adds_.push_back({id, request, arrival});
  callbacks_[id] = std::move(callback);
  wake_.notify_all();
  return id;
}

void Engine::cancel(RequestId id) {
  std::lock_guard<std::mutex> lock(mutex_);
  pending_cancels_.push_back(id);
  wake_.notify_all();
}

void Engine::wait_idle() {
  std::unique_lock<std::mutex> lock(mutex_);
  idle_.wait(lock, [&] {
    return !failure_.empty() || (!busy_ && pending_adds_.empty() && pending_cancels_.empty());
  });
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

bool Engine::alive() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_.empty() && !stopping_;
}

uint64_t Engine::steps() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_.steps;
}

// Runs on the engine thread with mutex_ held: moves queued submits and cancels into the core.
void Engine::apply_pending(std::vector<GenerationEvent>& events) {
  for (PendingAdd& p : pending_adds_) {
    if (Status s = core_.add(p.id, p.request, p.arrival); !s) {
      GenerationEvent e = final_event(p.id, FinishReason::kError, s.message());
      e.queue_seconds = std::chrono::duration<double>(EngineCore::Clock::now() - p.arrival).count();
      events.push_back(std::move(e));
    }
  }
  pending_adds_.clear();
  for (RequestId id : pending_cancels_) {
    if (std::optional<GenerationEvent> e = core_.cancel(id)) events.push_back(std::move(*e));
  }
  pending_cancels_.clear();
}

// Ends every open request with kError and stops accepting work.
void Engine::fail(const std::string& what, std::unique_lock<std::mutex>& lock) {
  failure_ = what.empty() ? "unknown error" : what;
  std::vector<std::pair<TokenCallback, GenerationEvent>> deliveries;
  for (auto& [id, callback] : callbacks_)
    deliveries.emplace_back(std::move(callback), final_event(id, FinishReason::kError, failure_));
  callbacks_.clear();
  pending_adds_.clear();
  pending_cancels_.clear();
  busy_ = false;
  idle_.notify_all();
  lock.unlock();
  for (auto& [callback, event] : deliveries) callback(event);
}

void Engine::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  try {
    run_steps(lock);
  } catch (const GroupFailure& e) {
    if (lock.owns_lock()) lock.unlock();
    if (group_.on_failure) group_.on_failure(e.what());
    lock.lock();
    fail(e.what(), lock);
  } catch (const std::exception& e) {
    if (!lock.owns_lock()) lock.lock();
    fail(e.what(), lock);
  }
}

void Engine::run_steps(std::unique_lock<std::mutex>& lock) {
  for (;;) {
    const auto ready = [&] {
      return stopping_ || core_.has_work() || !pending_adds_.empty() || !pending_cancels_.empty();
    };
    // A rank of a group joins every loop turn, idle or not (EngineCore::step).
    if (group_.group) {
      if (!wake_.wait_for(lock, idle_wait_, ready))
        idle_wait_ = std::min(idle_wait_ * 2, group_.idle_turn);
      else
        idle_wait_ = std::chrono::milliseconds(1);
    } else
      wake_.wait(lock, ready);
    if (stopping_) return;
    std::vector<GenerationEvent> events;
    apply_pending(events);
    busy_ = core_.has_work();
    lock.unlock();
    if (busy_ || group_.group) {
      std::vector<GenerationEvent> step_events = core_.step();
      // Another rank's work makes this one step too: stay quick while the group is busy.
      if (!step_events.empty() || core_.last_step_joined())
        idle_wait_ = std::chrono::milliseconds(1);
      events.insert(events.end(), std::make_move_iterator(step_events.begin()),
                    std::make_move_iterator(step_events.end()));
    }
    lock.lock();
    std::vector<std::pair<TokenCallback*, GenerationEvent>> deliveries;
    for (GenerationEvent& e : events) {
      auto it = callbacks_.find(e.id);
      if (it == callbacks_.end()) continue;
      deliveries.emplace_back(&it->second, std::move(e));
    }
    // An idle rank's turns change nothing worth copying the stats for, unless it joined a step.
    if (busy_ || !events.empty() || core_.last_step_joined()) stats_ = core_.stats();
    lock.unlock();
    // Callbacks run unlocked so they may call submit() or cancel().
    for (auto& [callback, event] : deliveries) (*callback)(event);
    lock.lock();
    for (auto& [callback, event] : deliveries)
      if (event.finish != FinishReason::kNone) callbacks_.erase(event.id);
    busy_ = core_.has_work();
    if (!busy_ && pending_adds_.empty() && pending_cancels_.empty()) idle_.notify_all();
  }
}

}  // namespace v4
