// The serving engine: EngineCore's step loop on its own thread. submit() and cancel() may be
// called from any thread; events are delivered through the request's callback on the engine
// thread, in order, ending with one whose finish reason is set.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "model/backend/cpu_backend.h"
#include "worker/engine_core.h"

namespace v4 {

using TokenCallback = std::function<void(const GenerationEvent&)>;

// An engine that is one rank of a worker group (step_group.h).
struct EngineGroup {
  std::unique_ptr<StepGroup> group;
  // Called on the engine thread when the group breaks, before the open requests get kError
  // events; a worker process exits here so that the router moves them to another group.
  std::function<void(const std::string&)> on_failure;
  // How long an idle rank waits for work before it joins the next loop turn anyway. The wait
  // starts at 1 ms after a busy turn and doubles up to this while the group stays idle: the
  // most a request arriving at an idle group waits for the other ranks, and what bounds the
  // CPU that idle ranks spend agreeing.
  std::chrono::milliseconds idle_turn{10};
};

class Engine {
 public:
  // On a CpuBackend with `threads` threads.
  Engine(const V4Weights& weights, const EngineOptions& options, unsigned threads = 0);
  // On `backend` (a GPU's: `weights` must then be resident there, device_weights.h).
  Engine(const V4Weights& weights, const EngineOptions& options, std::unique_ptr<Backend> backend);
  // As one rank of `group.group`, whose dispatcher must run on `backend`; or, outside a group,
  // with its routed experts run by `experts` (EngineCore).
  Engine(const V4Weights& weights, const EngineOptions& options, std::unique_ptr<Backend> backend,
         EngineGroup group, std::unique_ptr<ExpertDispatcher> experts = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates and queues the request; the id is its handle for cancel().
  Result<RequestId> submit(const GenerationRequest& request, TokenCallback callback);
  // Ends the request before the next step (its pages return then); its callback gets a final
  // kCancelled event. Unknown or finished ids are ignored.
  void cancel(RequestId id);
  // Blocks until no request is running or waiting (or the loop has failed).
  void wait_idle();
  EngineStats stats() const;

  // The step loop runs: it is stepping or idle waiting for work, and has not stopped on an
  // exception (then every open request got a kError event and submit() fails).
  bool alive() const;
  // Non-empty steps run since start.
  uint64_t steps() const;
  const EngineOptions& options() const { return core_.options(); }
  uint32_t max_context() const { return core_.options().max_context; }

 private:
  struct PendingAdd {
    RequestId id;
    GenerationRequest request;
    EngineCore::Clock::time_point arrival;
  };

  void loop();
  void run_steps(std::unique_lock<std::mutex>& lock);
  void apply_pending(std::vector<GenerationEvent>& events);
  void fail(const std::string& what, std::unique_lock<std::mutex>& lock);

  std::unique_ptr<Backend> backend_;
  EngineGroup group_;
  std::unique_ptr<ExpertDispatcher> experts_;
  EngineCore core_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::vector<PendingAdd> pending_adds_;
  std::vector<RequestId> pending_cancels_;
  std::unordered_map<RequestId, TokenCallback> callbacks_;
  RequestId next_id_ = 1;
  EngineStats stats_;
  bool busy_ = false;
  std::chrono::milliseconds idle_wait_{1};  // a group rank's next idle wait (EngineGroup)
  bool stopping_ = false;
  std::string failure_;  // why the loop stopped; empty while it runs
  std::thread thread_;
};

}  // namespace v4
