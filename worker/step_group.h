// A worker group's lockstep (spec §3.5 under expert parallelism): the ranks of one model replica
// each run their own requests, but every MoE layer is a collective over all of them, so each
// engine-loop turn every rank must take the same decision — step, or not. A rank with no work
// joins a step with zero tokens. EngineCore calls agree() once per turn on every rank; the
// implementation (worker/ep/worker_group.h) wraps the group's collective.
#pragma once

#include <cstdint>
#include <stdexcept>

#include "core/status.h"
#include "model/v4/expert_dispatcher.h"

namespace v4 {

// What a rank's expert exchanges cost since start (metrics, benchmarks). Bytes count only what
// crosses to other ranks; seconds are wall time in each phase of the MoE layers' exchanges.
struct GroupTraffic {
  uint64_t dispatch_bytes = 0;  // token rows sent to the ranks owning their experts
  uint64_t combine_bytes = 0;   // expert results sent back to the ranks owning the tokens
  uint64_t exchanges = 0;       // MoE layers run through the group
  uint64_t joined_steps = 0;    // steps this rank joined with no tokens of its own
  double dispatch_seconds = 0;  // packing, the counts' all-gather and the rows' all-to-all
  double expert_seconds = 0;    // the experts this rank owns, on every rank's rows
  double combine_seconds = 0;   // the results' all-to-all and the weighted sums
  // Exchange time hidden under the rank's own compute (the shared expert, its own rows); the
  // three phases above count only what the forward waited.
  double overlapped_seconds = 0;
};

class StepGroup {
 public:
  virtual ~StepGroup() = default;

  // The dispatcher the forward hands its MoE layers to (collective()).
  virtual ExpertDispatcher& dispatcher() = 0;
  // Called once per loop turn on every rank: this rank's planned tokens in, the group's total
  // out (0: no rank has work and no forward runs). An error means the group is broken.
  virtual Result<uint64_t> agree(uint64_t local_tokens) = 0;
  virtual int rank() const = 0;
  virtual int ranks() const = 0;
  virtual GroupTraffic traffic() const = 0;
};

// Thrown out of EngineCore::step() when the group broke (a lost or out-of-step peer, or a
// failed forward: the ranks' collectives no longer line up). The engine cannot recover; the
// worker stops so that its whole group reports unhealthy and the router moves its requests.
class GroupFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace v4
