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
};

// Thrown out of EngineCore::step() when the group broke (a lost or out-of-step peer, or a
// failed forward: the ranks' collectives no longer line up). The engine cannot recover; the
// worker stops so that its whole group reports unhealthy and the router moves its requests.
class GroupFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace v4
