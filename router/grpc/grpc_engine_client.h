// The router's EngineClient over gRPC workers (docs/design.md, router -> worker): routes each
// request (RoutingPolicy), streams its events back, and moves the requests of a worker that
// dies, breaks its stream or drains to another one as continuations (prompt + the tokens
// already sent, same seed, resumed_tokens = their count), so a client's stream goes on without
// a gap, a duplicate or a changed token. A health thread ejects workers that stop answering and
// re-admits them when they answer again. With no worker left, submit() fails and open
// requests end with an error event: nothing hangs. Workers are the configured addresses plus,
// with DNS discovery, the name's current records: a record that appears adds a worker, one
// that goes removes it (its requests move on as from a lost worker).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "router/grpc/router_grpc_metrics.h"
#include "router/grpc/routing_policy.h"
#include "router/grpc/worker_discovery.h"
#include "router/grpc/worker_link.h"
#include "router/openai/engine_client.h"

namespace v4::router_grpc {

struct GrpcClientOptions {
  std::vector<std::string> workers;  // host:port
  LinkOptions link;
  RoutingOptions routing;
  std::chrono::milliseconds health_interval{500};
  uint32_t default_max_context = 4096;         // until a worker reports its own
  std::optional<DnsDiscoveryOptions> dns;      // workers from a DNS name, besides `workers`
  std::shared_ptr<RouterGrpcMetrics> metrics;  // null: no Prometheus series
};

// Router-side batching and failover figures since start.
struct GrpcClientCounters {
  uint64_t submit_messages = 0, submitted = 0;  // Submit messages and the requests they carried
  uint64_t resubmitted = 0;                     // continuations sent after a worker was lost
  uint64_t affinity_hits = 0;                   // requests routed to a worker holding their pages
};

class GrpcEngineClient final : public router::EngineClient {
 public:
  explicit GrpcEngineClient(GrpcClientOptions options);
  ~GrpcEngineClient() override;  // ends open requests with kCancelled

  // Resolves the DNS name once, probes and connects every worker once (so a router started
  // after its workers serves at once), then starts the health (and DNS) threads.
  void start();
  // The workers of the DNS name are now `addresses` (host:port): new ones are added (the next
  // health check connects them), those gone are removed. Configured workers stay.
  void set_discovered_workers(const std::vector<std::string>& addresses);

  Result<router::EngineRequestId> submit(router::EngineRequest request,
                                         EventCallback on_event) override;
  void cancel(router::EngineRequestId id) override;
  router::EngineSnapshot snapshot() const override;
  uint32_t max_context() const override;
  bool ready() const override;

  size_t usable_workers() const;
  // Addresses of the workers in the configuration now (configured or discovered), usable or not.
  std::vector<std::string> worker_addresses() const;
  GrpcClientCounters counters() const;

 private:
  struct Tracked;
  struct Worker {
    std::unique_ptr<WorkerLink> link;
    bool up = false;
    bool draining = false;
    uint64_t session = 0;
    uint32_t max_context = 0;
    std::optional<pb::StatsResponse> stats;
    std::string last_error;   // logged once until it changes
    bool configured = false;  // named by --workers: never removed
    bool discovered = false;  // among the DNS name's records now
    // Why the health check closed the stream (the ejection's reason once the reader reports).
    std::string eject_reason;
    bool removed() const { return !configured && !discovered; }
  };
  using Flush = std::vector<std::shared_ptr<Tracked>>;

  void on_events(size_t worker, uint64_t session, pb::Events& events);
  void on_broken(size_t worker, uint64_t session, const std::string& why);
  // Sends the request (again) to a usable worker other than `avoid`, as a continuation after
  // the tokens it already sent; ends it when none is left. mutex_ held.
  void place(router::EngineRequestId id, const std::shared_ptr<Tracked>& t,
             std::optional<size_t> avoid, Flush& flush);
  void end_locked(router::EngineRequestId id, const std::shared_ptr<Tracked>& t,
                  router::EngineEvent event, Flush& flush);
  // Delivers queued events in order, without mutex_ (callbacks may call cancel()).
  void deliver(const Flush& flush);
  std::vector<WorkerLoad> loads() const;  // mutex_ held
  void health_loop();
  void dns_loop();
  void resolve_once();
  void check(size_t worker);
  // Opens the worker's stream and marks it up; false (logged) when it could not.
  bool connect(size_t worker, WorkerLink& link);
  // Logs a worker's error once until it changes (`refused`: as an error, else a warning).
  void note_error(size_t worker, const std::string& message, bool refused);
  // The index of a new worker for `address`, its link made. mutex_ held.
  size_t add_worker_locked(const std::string& address);
  // The state series of worker i. mutex_ held.
  void publish_state_locked(size_t worker);
  bool usable(const Worker& w) const { return w.up && !w.draining && !w.removed(); }

  GrpcClientOptions options_;
  mutable std::mutex mutex_;
  std::vector<Worker> workers_;
  RoutingPolicy policy_;
  std::unordered_map<router::EngineRequestId, std::shared_ptr<Tracked>> requests_;
  router::EngineRequestId next_id_ = 1;
  GrpcClientCounters counters_;
  bool stopping_ = false;
  std::condition_variable stop_;
  std::thread health_, dns_;
};

}  // namespace v4::router_grpc
