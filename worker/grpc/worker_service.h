// The gRPC Worker service (proto/worker.proto) over an in-process Engine: one Generate stream
// per router carries its requests; Health, Stats and Drain answer from the engine's state.
// A stream that ends (the router left or its connection broke) cancels the requests it
// carried, so their pages free at the next step.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "proto/worker.grpc.pb.h"
#include "worker/engine.h"

namespace v4::worker_grpc {

namespace pb = ::v4serve::worker::v1;

struct WorkerServiceOptions {
  std::string worker_id;  // for logs and Health (e.g. the listen address)
  std::string model;      // general.name of the served file
  // What this worker speaks; only tests set another to check that peers refuse each other.
  uint32_t protocol_version = pb::PROTOCOL_VERSION_CURRENT;
  // Set: every call must carry `authorization: Bearer <auth_token>` (bearer_token.h).
  std::string auth_token;
};

class WorkerService final : public pb::Worker::Service {
 public:
  // `engine` must outlive the service and the server running it.
  WorkerService(Engine& engine, WorkerServiceOptions options);

  grpc::Status Generate(grpc::ServerContext* context,
                        grpc::ServerReaderWriter<pb::GenerateOut, pb::GenerateIn>* stream) override;
  grpc::Status Health(grpc::ServerContext* context, const pb::HealthRequest* request,
                      pb::HealthResponse* response) override;
  grpc::Status Stats(grpc::ServerContext* context, const pb::StatsRequest* request,
                     pb::StatsResponse* response) override;
  grpc::Status Drain(grpc::ServerContext* context, const pb::DrainRequest* request,
                     pb::DrainResponse* response) override;

  // From now on new submissions end at once with FINISH_ERROR and retry_elsewhere, and Health
  // says DRAINING; requests already taken run to their end.
  void drain() { draining_ = true; }
  bool draining() const { return draining_; }
  // Requests taken and not yet ended, over all streams.
  uint64_t open_requests() const { return open_->load(); }

 private:
  struct Stream;
  // The mismatch error both peers log, or OK.
  grpc::Status check_version(uint32_t peer_version) const;
  // The token check of every method; a refusal is logged (the first, then at powers of two).
  grpc::Status authorize(const grpc::ServerContext& context);
  void submit(const std::shared_ptr<Stream>& stream, const pb::SubmitRequest& request);

  Engine& engine_;
  WorkerServiceOptions options_;
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> refused_calls_{0};
  // Shared with the event callbacks, which the engine may run after a stream has ended.
  std::shared_ptr<std::atomic<uint64_t>> open_ = std::make_shared<std::atomic<uint64_t>>(0);
  struct PrefixCounts {
    std::atomic<uint64_t> queries{0}, hits{0};
  };
  std::shared_ptr<PrefixCounts> prefix_ = std::make_shared<PrefixCounts>();
};

}  // namespace v4::worker_grpc
