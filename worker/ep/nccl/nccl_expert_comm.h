// ExpertComm over NCCL: the GPU ranks of a worker group (one process per GPU). The communicator's
// unique id travels through the group's rendezvous store (the same one Gloo's ranks meet
// through), so GPU groups need nothing beyond the worker flags. Buffers of all_to_all are device
// memory; all_gather's counts are host memory, staged through the device. Every operation waits
// for its completion with a deadline; past it the communicator is aborted and the call fails, so
// a lost peer never hangs a rank.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "worker/ep/expert_comm.h"

namespace gloo::rendezvous {
class Store;
}

namespace v4 {

struct NcclRendezvous {
  gloo::rendezvous::Store* store = nullptr;  // outlives connect()
  std::string group;                         // keys are prefixed with it
  int rank = 0;
  int size = 1;
  int device = 0;  // CUDA device ordinal of this rank
  std::chrono::milliseconds timeout{60000};
};

class NcclExpertComm final : public ExpertComm {
 public:
  // Blocks until every rank has joined the communicator, or the timeout passes.
  static Result<std::unique_ptr<NcclExpertComm>> connect(const NcclRendezvous& rendezvous);
  ~NcclExpertComm() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Status all_gather(const int64_t* in, int64_t n, int64_t* out) override;
  Status all_to_all(const void* send, std::span<const int64_t> send_bytes, void* recv,
                    std::span<const int64_t> recv_bytes) override;

 private:
  struct State;
  explicit NcclExpertComm(std::unique_ptr<State> state, int rank, int size);
  // Waits for the work enqueued on the stream, aborting the communicator past the deadline.
  Status finish(const char* what);

  std::unique_ptr<State> state_;
  int rank_, size_;
};

}  // namespace v4
