// ExpertComm over Gloo's TCP transport (Debian's libgloo): CPU ranks of a worker group, and the
// multi-process tests. Ranks meet through a rendezvous store: rank 0's gRPC store
// (grpc_rendezvous_store.h) or a directory every rank can reach (Gloo's FileStore; one machine
// or a shared volume). Buffers are host memory.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "worker/ep/expert_comm.h"

namespace gloo {
class Context;
namespace rendezvous {
class Store;
}
}  // namespace gloo

namespace v4 {

struct GlooRendezvous {
  std::string store_dir;  // shared by the group; must exist (used when `store` is null)
  gloo::rendezvous::Store* store = nullptr;  // e.g. GrpcRendezvousStore; outlives connect()
  std::string group;  // keys are prefixed with it, so groups may share a directory
  int rank = 0;
  int size = 1;
  std::string host = "127.0.0.1";  // this rank's address for its peers
  std::chrono::milliseconds timeout{60000};
};

class GlooExpertComm final : public ExpertComm {
 public:
  // Blocks until every rank of the group has connected, or the timeout passes.
  static Result<std::unique_ptr<GlooExpertComm>> connect(const GlooRendezvous& rendezvous);
  ~GlooExpertComm() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Status all_gather(const int64_t* in, int64_t n, int64_t* out) override;
  Status all_to_all(const void* send, std::span<const int64_t> send_bytes, void* recv,
                    std::span<const int64_t> recv_bytes) override;

 private:
  GlooExpertComm(std::shared_ptr<gloo::Context> context, int rank, int size);

  std::shared_ptr<gloo::Context> context_;
  int rank_, size_;
  uint32_t tag_ = 0;  // operations in flight at once: one, but tags keep them apart anyway
};

}  // namespace v4
