// One expert-parallel worker group as the engine sees it (StepGroup): the ranks meet through
// rank 0's rendezvous store, connect Gloo's full mesh, and from then on agree on every loop turn
// and exchange expert rows every MoE layer (EpExpertDispatcher). A group is ready only when
// every rank has connected, so a worker opens its serving port only then.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "model/v4/v4_config.h"
#include "worker/ep/ep_expert_dispatcher.h"
#include "worker/ep/gloo_expert_comm.h"
#include "worker/ep/grpc_rendezvous_store.h"
#include "worker/ep/rendezvous_service.h"
#include "worker/step_group.h"

namespace v4 {

struct WorkerGroupOptions {
  std::string name;  // keys in the store are prefixed with it
  int rank = 0;
  int ranks = 1;
  std::string leader;              // rank 0's rendezvous address (host:port) every rank dials
  std::string leader_listen;       // where rank 0 listens; empty: `leader`
  std::string host = "127.0.0.1";  // this rank's address for its peers' collectives
  std::chrono::milliseconds timeout{60000};  // the rendezvous and every collective
  // Balanced placement (expert_placement.h): the selection counts of a recorded trace and the
  // extra replicas per rank; no file: contiguous shards.
  std::string expert_stats;
  uint32_t redundant_experts = 0;
  // The MoE exchanges beside the rank's own compute (EpExpertDispatcher), or inline.
  bool overlap = true;
  // Steps in two micro-batches (ForwardLimits::two_micro_batches): every rank must agree, since
  // it doubles each MoE layer's exchanges.
  bool two_micro_batches = false;
  // The most tokens a rank's step holds (its --max-batch-tokens; 0: unbounded). Every rank must
  // have the same: each sizes its exchange buffers for its peers' steps of up to this many
  // (EpExpertDispatcher::reserve), and a peer announcing more is refused.
  uint32_t max_step_tokens = 0;
};

// Where a rank's expert rows live and travel. CPU ranks (the default): host memory over Gloo.
// Device ranks: `held_only` when the device's expert stacks hold only this rank's experts
// (held_experts()), and `exchange` makes the communicator for the rows from the group's store
// (NCCL for GPU ranks; unset: the Gloo mesh, which the emulated device's host memory allows).
struct GroupDevice {
  bool held_only = false;
  std::function<Result<std::unique_ptr<ExpertComm>>(gloo::rendezvous::Store& store)> exchange;
};

// Checks what flags alone can tell: names, rank range, addresses.
Status validate(const WorkerGroupOptions& options);
// The placement the options ask for: contiguous, or balanced from --expert-stats.
Result<ExpertPlacement> make_placement(const WorkerGroupOptions& options, const V4Config& config);

class WorkerGroup final : public StepGroup {
 public:
  // Blocks until the whole group has met, or the timeout passes. The ranks then compare their
  // models' shapes: a rank that loaded another model is refused before any step.
  static Result<std::unique_ptr<WorkerGroup>> join(const WorkerGroupOptions& options,
                                                   Backend& backend, const V4Config& config,
                                                   const GroupDevice& device = {});
  ~WorkerGroup() override;

  ExpertDispatcher& dispatcher() override { return *dispatcher_; }
  Result<uint64_t> agree(uint64_t local_tokens) override;
  int rank() const override { return comm_->rank(); }
  int ranks() const override { return comm_->size(); }
  GroupTraffic traffic() const override;
  const EpExpertDispatcher& ep_dispatcher() const { return *dispatcher_; }

 private:
  WorkerGroup() = default;
  Status compare_models(const V4Config& config, uint64_t placement_digest);

  std::unique_ptr<RendezvousService> service_;  // rank 0 only
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<GrpcRendezvousStore> store_;
  std::unique_ptr<GlooExpertComm> comm_;
  std::unique_ptr<ExpertComm> exchange_;  // the rows' communicator when not comm_ (NCCL)
  std::unique_ptr<EpExpertDispatcher> dispatcher_;
  bool two_micro_batches_ = false;
  uint32_t max_step_tokens_ = 0;
  uint64_t turn_ = 0;
  uint64_t joined_steps_ = 0;
};

}  // namespace v4
