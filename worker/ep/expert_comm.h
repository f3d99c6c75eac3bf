// The collective the ranks of one worker group run each MoE layer (spec §3.5 under expert
// parallelism): an all-gather of small counts and a variable-size all-to-all of expert rows.
// Implementations wrap a collective library (Gloo for CPU ranks here; NCCL for GPU ranks), never
// hand-written sockets. Every rank calls the same sequence of operations; a failed or timed-out
// peer turns into an error on every rank that waits for it, never a hang.
#pragma once

#include <cstdint>
#include <span>

#include "core/status.h"

namespace v4 {

class ExpertComm {
 public:
  virtual ~ExpertComm() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // out[r·n + i] = rank r's in[i], for n values per rank.
  virtual Status all_gather(const int64_t* in, int64_t n, int64_t* out) = 0;

  // Sends send_bytes[r] bytes to each rank r (the segments of `send` in rank order) and receives
  // recv_bytes[r] bytes from each (into `recv`, in rank order). Both spans hold size() entries.
  virtual Status all_to_all(const void* send, std::span<const int64_t> send_bytes, void* recv,
                            std::span<const int64_t> recv_bytes) = 0;
};

}  // namespace v4
