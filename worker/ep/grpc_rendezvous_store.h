// Gloo's rendezvous Store over rank 0's gRPC Rendezvous service (rendezvous_service.h), so that
// the ranks of a worker group meet by network name — rank 0's address, or a Kubernetes
// headless-service name — instead of through a shared directory. Every call is bounded by the
// group's timeout; a leader that is not listening yet is retried until then.
#pragma once

#include <gloo/rendezvous/store.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "proto/group.grpc.pb.h"

namespace v4 {

class GrpcRendezvousStore final : public gloo::rendezvous::Store {
 public:
  GrpcRendezvousStore(const std::string& leader, std::chrono::milliseconds timeout);

  // Gloo's interface: errors throw std::runtime_error (Gloo's own stores throw too).
  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override;

 private:
  // Waits for `keys` (and fetches their values when asked) until `timeout` passes.
  std::vector<std::string> fetch(const std::vector<std::string>& keys, bool values,
                                 std::chrono::milliseconds timeout);

  std::string leader_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<v4serve::group::v1::Rendezvous::Stub> stub_;
};

}  // namespace v4
