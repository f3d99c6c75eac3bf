// The serving engine: EngineCore's step loop on its own thread. submit() and cancel() may be
// called from any thread; events are delivered through the request's callback on the engine
// thread, in order, ending with one whose finish reason is set.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "model/cpu_backend.h"
#include "worker/engine_core.h"

namespace v4 {

using TokenCallback = std::function<void(const GenerationEvent&)>;

class Engine {
 public:
  Engine(const V4Weights& weights, const EngineOptions& options, unsigned threads = 0);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates and queues the request; the id is its handle for cancel().
  Result<RequestId> submit(const GenerationRequest& request, TokenCallback callback);
  // Ends the request before the next step (its pages return then); its callback gets a final
  // kCancelled event. Unknown or finished ids are ignored.
  void cancel(RequestId id);
  // Blocks until no request is running or waiting.
  void wait_idle();
  EngineStats stats() const;

 private:
  void loop();
  void apply_pending(std::vector<GenerationEvent>& events);

  CpuBackend backend_;
  EngineCore core_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::vector<std::pair<RequestId, GenerationRequest>> pending_adds_;
  std::vector<RequestId> pending_cancels_;
  std::unordered_map<RequestId, TokenCallback> callbacks_;
  RequestId next_id_ = 1;
  EngineStats stats_;
  bool busy_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace v4
