#include "worker/engine.h"

namespace v4 {

Engine::Engine(const V4Weights& weights, const EngineOptions& options, unsigned threads)
    : backend_(threads), core_(weights, backend_, options), thread_([this] { loop(); }) {}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

Result<RequestId> Engine::submit(const GenerationRequest& request, TokenCallback callback) {
  // validate() reads only immutable configuration, so it is safe beside a running step.
  if (Status s = core_.validate(request); !s) return s;
  std::lock_guard<std::mutex> lock(mutex_);
  const RequestId id = next_id_++;
  pending_adds_.emplace_back(id, request);
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
  idle_.wait(lock, [&] { return !busy_ && pending_adds_.empty() && pending_cancels_.empty(); });
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

// Runs on the engine thread with mutex_ held: moves queued submits and cancels into the core.
void Engine::apply_pending(std::vector<GenerationEvent>& events) {
  for (auto& [id, request] : pending_adds_) {
    if (Status s = core_.add(id, request); !s)
      events.push_back({id, -1, 0.0f, {}, FinishReason::kError});
  }
  pending_adds_.clear();
  for (RequestId id : pending_cancels_) {
    if (core_.cancel(id)) events.push_back({id, -1, 0.0f, {}, FinishReason::kCancelled});
  }
  pending_cancels_.clear();
}

void Engine::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] {
      return stopping_ || core_.has_work() || !pending_adds_.empty() || !pending_cancels_.empty();
    });
    if (stopping_) return;
    std::vector<GenerationEvent> events;
    apply_pending(events);
    busy_ = core_.has_work();
    lock.unlock();
    if (busy_) {
      std::vector<GenerationEvent> step_events = core_.step();
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
    stats_ = core_.stats();
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
