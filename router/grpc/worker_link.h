// One router's connection to one worker (proto/worker.proto): unary Health / Stats probes with
// a deadline, and a Generate stream whose reader thread hands events to the owner and whose
// writer thread sends queued submissions in batches (those queued within the batching window,
// up to batch_max, travel in one Submit message).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "proto/worker.grpc.pb.h"
#include "router/grpc/link_security.h"

namespace v4::router_grpc {

namespace pb = ::v4serve::worker::v1;

struct LinkOptions {
  // What this router speaks; only tests set another to check that peers refuse each other.
  uint32_t protocol_version = pb::PROTOCOL_VERSION_CURRENT;
  std::string router_id;
  // Submissions queued within this window after the first one travel in one message (0: each
  // is sent as soon as the writer gets to it; those queued meanwhile still go together).
  std::chrono::microseconds batch_window{0};
  size_t batch_max = 64;
  // Called on the writer thread after each Submit message with the requests it carried (the
  // router's Prometheus counters); may be empty.
  std::function<void(size_t requests)> on_submit_message;
  std::chrono::milliseconds rpc_timeout{2000};  // Health, Stats, and the Welcome of a stream
  // TLS credentials and the token every call carries; null credentials dial without TLS.
  LinkSecurity security;
};

class WorkerLink {
 public:
  // Both run on the stream's reader thread; `session` names the stream they come from.
  using EventsHandler = std::function<void(uint64_t session, pb::Events& events)>;
  using BrokenHandler = std::function<void(uint64_t session, const std::string& why)>;

  WorkerLink(std::string address, LinkOptions options, EventsHandler on_events,
             BrokenHandler on_broken);
  ~WorkerLink();  // closes the stream and joins its threads (handlers may still run until then)
  WorkerLink(const WorkerLink&) = delete;
  WorkerLink& operator=(const WorkerLink&) = delete;

  const std::string& address() const { return address_; }
  // The worker's Health answer, or why there is none (unreachable, another protocol version).
  Result<pb::HealthResponse> health();
  Result<pb::StatsResponse> stats();
  // Asks the worker to drain (it stops taking requests); its count of open requests.
  Result<uint32_t> drain();
  // Opens a Generate stream (Hello, then the worker's Welcome within rpc_timeout) and returns
  // its session id; a previous stream must have broken (its threads are joined first).
  Result<uint64_t> open(pb::Welcome& welcome);
  // Ends the current stream; its reader then reports the break. Does not wait.
  void close();
  // Queued on stream `session`; false when that stream is gone.
  bool submit(uint64_t session, pb::SubmitRequest request);
  bool cancel(uint64_t session, uint64_t id);

  uint64_t submit_messages() const { return submit_messages_.load(); }
  uint64_t submitted() const { return submitted_.load(); }

 private:
  struct Session;
  void read_loop(std::shared_ptr<Session> session);
  void write_loop(std::shared_ptr<Session> session);
  grpc::Status version_error(uint32_t worker_version) const;
  // The token metadata and the deadline every unary call carries.
  void prepare(grpc::ClientContext& context, bool deadline) const;
  // "<address>: <CODE>: <message>", with a hint where TLS settings are the likely cause.
  std::string describe(const grpc::Status& status) const;

  std::string address_;
  LinkOptions options_;
  EventsHandler on_events_;
  BrokenHandler on_broken_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Worker::Stub> stub_;
  std::mutex mutex_;
  std::shared_ptr<Session> session_;
  uint64_t next_session_ = 1;
  std::atomic<uint64_t> submit_messages_{0}, submitted_{0};
};

}  // namespace v4::router_grpc
