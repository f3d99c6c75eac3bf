// The router's view of its gRPC workers in Prometheus (README, "Metrics"): each worker's state,
// the requests routed to it, the Health round trip, ejections by reason, and failovers. They
// live in the registry of the server's /metrics (ServerMetrics::registry()), so one scrape
// returns them with the rest.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace v4serve::worker::v1 {
class StatsResponse;
}

namespace v4::router_grpc {

enum class WorkerState { kUsable, kDraining, kEjected };

class RouterGrpcMetrics {
 public:
  // Registers the families in `registry`, which must outlive this object.
  explicit RouterGrpcMetrics(prometheus::Registry& registry);

  // One-hot: v4serve:router_worker_state{worker,state} is 1 for the worker's state.
  void set_state(const std::string& worker, WorkerState state);
  // The worker left the configuration (its DNS record went away): its series go too.
  void remove_worker(const std::string& worker);
  void routed(const std::string& worker);
  // A request moved to another worker (its worker was lost, ejected, removed or draining).
  void failover();
  // A usable worker stopped being one; `reason` is a short snake_case word.
  void ejected(const std::string& worker, std::string_view reason);
  void health_round_trip(const std::string& worker, double seconds);
  // One Submit message went to a worker carrying `requests` requests (router-side batching:
  // requests / messages is the batch size the window achieved).
  void submit_message(size_t requests);
  // A worker's latest Stats: its own prefix-cache and step-time counters and, for a rank of a
  // worker group, its exchanges' bytes and phase times (per rank, where /metrics' engine
  // series add the workers up).
  void worker_stats(const std::string& worker, const v4serve::worker::v1::StatsResponse& stats);

 private:
  prometheus::Family<prometheus::Gauge>& state_;
  prometheus::Family<prometheus::Counter>& routed_;
  prometheus::Family<prometheus::Counter>& ejections_;
  prometheus::Family<prometheus::Histogram>& health_seconds_;
  prometheus::Counter& failovers_;
  prometheus::Counter& submit_messages_;
  prometheus::Counter& submitted_requests_;
  prometheus::Family<prometheus::Counter>& worker_prefix_queries_;
  prometheus::Family<prometheus::Counter>& worker_prefix_hits_;
  prometheus::Family<prometheus::Counter>& worker_step_seconds_;
  prometheus::Family<prometheus::Counter>& worker_ep_bytes_;
  prometheus::Family<prometheus::Counter>& worker_ep_seconds_;
  // Per worker and series: the highest value seen, so a counter that a restarted worker
  // starts again from zero only resumes growing past it.
  std::map<std::string, std::map<std::string, double>> last_;
};

}  // namespace v4::router_grpc
