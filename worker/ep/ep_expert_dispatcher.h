// The expert-parallel ExpertDispatcher (spec §3.5 across ranks). Per MoE layer every rank of the
// group, busy or not: (1) reads its (token, slot) pairs' experts and weights back (n·k of each,
// small) and plans on the host which rank runs each pair and where its row goes; (2) packs the
// peers' rows on its backend — activations, then the expert id and the weight — and all-to-alls
// them to their owners, while the caller's shared expert runs; (3) runs the rows it received
// through LocalExpertDispatcher (one slot per row, so each row comes back weighted, unsummed);
// (4) all-to-alls those results back while its own rows (which never leave it) run through its
// experts; (5) sums each token's slots in selection order (Backend::sum_slots). A row's
// arithmetic is the same on any rank and in any call, and the sum order is fixed, so every
// token's output is bit-identical to one rank running every expert.
//
// Every buffer the rows travel through is the backend's memory: host memory for CpuBackend (the
// communicator is Gloo), device memory for a device backend (NCCL on a GPU; Gloo on the
// emulated device, whose memory is the host's). Only the plan crosses between host and device.
// The exchanges run on an ExchangeThread; with overlap off they run inline, in the same order.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/v4/expert_dispatcher.h"
#include "model/v4/expert_tiers.h"
#include "worker/ep/exchange_thread.h"
#include "worker/ep/expert_comm.h"
#include "worker/ep/expert_placement.h"
#include "worker/step_group.h"

namespace v4 {

// The experts `rank` holds in each of the n_layer MoE layers, as the tiers DeviceWeights::upload
// compacts a device's expert stacks to (a device rank keeps only its share in memory).
ExpertTiers held_experts(const ExpertPlacement& placement, int rank, uint32_t n_layer);

class EpExpertDispatcher final : public ExpertDispatcher {
 public:
  // Contiguous shards. `overlap`: the exchanges run beside the rank's own compute.
  EpExpertDispatcher(Backend& backend, ExpertComm& comm, uint32_t n_expert, bool overlap = true);
  // `placement` must be the same on every rank (WorkerGroup compares digests). `held_only`: the
  // expert stacks the forward passes in hold only this rank's experts of each layer, ids
  // ascending (held_experts()); otherwise every expert, at its id.
  EpExpertDispatcher(Backend& backend, ExpertComm& comm, ExpertPlacement placement,
                     bool overlap = true, bool held_only = false);

  void dispatch_combine(uint32_t layer, const ExpertFfnWeights& experts, const RoutedTokens& tokens,
                        float* out, FunctionRef<void()> meanwhile) override;
  bool collective() const override { return true; }
  Status take_error() override;
  // Every region sized for steps of up to `tokens` tokens on every rank of the group (this rank's
  // tokens·k pairs, and up to (ranks − 1)·tokens·k rows from its peers: every rank serves with
  // the same --max-batch-tokens), and the local dispatcher for the larger of the two.
  void reserve(int64_t tokens, uint32_t k, int64_t n_embd, uint32_t n_expert) override;
  static uint64_t bytes_for(int ranks, int64_t tokens, uint32_t k, int64_t n_embd,
                            uint32_t n_expert);
  uint64_t buffer_bytes() const override;

  // The tokens each rank runs in the coming step (the group's agreement, WorkerGroup::agree).
  // A peer that announces more rows than its tokens × k is refused before any buffer is sized
  // for them. Until the first call (a forward run outside a group's loop) the bound is 2^32 rows.
  void expect_step(std::span<const int64_t> tokens_per_rank);

  const ExpertPlacement& placement() const { return placement_; }
  // Rows this rank sent to other ranks and computed for them, since construction.
  uint64_t rows_sent() const { return rows_sent_; }
  uint64_t rows_served() const { return rows_served_; }
  // Bytes and phase times since construction (joined_steps is the group's to count).
  const GroupTraffic& traffic() const { return traffic_; }

 private:
  // A region of the backend's memory that grows to the largest size asked for.
  struct Region {
    std::unique_ptr<DeviceBuffer> buffer;
    template <class T>
    T* get() const {
      return buffer ? static_cast<T*>(buffer->data()) : nullptr;
    }
  };

  Status exchange(uint32_t layer, const ExpertFfnWeights& experts, const RoutedTokens& in,
                  FunctionRef<void()> meanwhile);
  // From the routing read back: counts_, the send order (send_src_: each row's token, peers'
  // rows first, this rank's own after them), meta_ (the peers' rows' expert ids and weights),
  // own_ids_/own_weights_, own_begin_ and slot_row_ (each pair's result row).
  void plan(uint32_t layer, const RoutedTokens& in);
  // The plan up, the rows packed on the backend.
  Status pack(const RoutedTokens& in);
  // The counts' all-gather: who sends how many rows to whom (received_, from_, the byte counts).
  Status agree_counts(uint32_t layer, int64_t width, uint32_t k);
  // Rank r's announced rows to each rank (counts[q]): none negative, their sum within its bound.
  Status check_peer_counts(int r, const int64_t* counts, uint32_t k) const;
  // The received rows' activations into recv_x_, their experts (as stack slots) and weights
  // checked on the host and sent back down; refuses a row for an expert this rank does not hold.
  Status unpack(uint32_t layer, int64_t d);
  // [expert] -> its slot in this rank's stacks of `layer` (its id unless held_only), or -1 where
  // this rank does not hold it; made at a layer's first use.
  const std::vector<int32_t>& slots(uint32_t layer);
  uint32_t stack_size(uint32_t layer, uint32_t n_expert);
  Status upload(const void* host, Region& region, size_t bytes);
  // Appends `bytes` of host data to staging_ (cleared first when `first`), 8-byte aligned;
  // returns where it starts: several small arrays then go to the backend in one copy.
  size_t stage(const void* host, size_t bytes, bool first = false);
  void* fit(Region& region, size_t bytes);
  // The backend-side regions, in region_bounds' order (ep_expert_dispatcher.cpp).
  template <class Self>
  static auto regions(Self& self) {
    return std::array{&self.plan_,   &self.send_,          &self.recv_,
                      &self.recv_x_, &self.recv_meta_dev_, &self.recv_plan_,
                      &self.own_x_,  &self.served_,        &self.returned_};
  }
  void account(double exposed, double& phase_seconds);

  Backend& backend_;
  ExpertComm& comm_;
  ExpertPlacement placement_;
  bool held_only_;
  std::vector<std::vector<int32_t>> slots_;  // [layer][expert] -> slot or -1
  LocalExpertDispatcher local_;
  Status error_;
  uint64_t rows_sent_ = 0, rows_served_ = 0;
  GroupTraffic traffic_;
  // Host side, reused across layers: the routing read back, the plan, the counts.
  std::vector<int32_t> ids_, own_ids_, recv_ids_;
  std::vector<int> owners_;           // [pair] -> the rank that runs it
  std::vector<int64_t> step_tokens_;  // expect_step()
  std::vector<float> weights_, meta_, own_weights_, recv_meta_, recv_weights_;
  std::vector<int64_t> send_src_, slot_row_, counts_, all_counts_, from_, send_bytes_, recv_bytes_,
      starts_;
  int64_t own_begin_ = 0;         // where this rank's own rows start in the send order and results
  int64_t received_ = 0;          // rows from peers this layer
  std::vector<uint8_t> staging_;  // stage(): arrays on their way to the backend in one copy
  // Backend side: the plan (send_src, slot_row, meta, own ids and weights, staged in one
  // region), the rows out, in and unpacked, the received rows' ids and weights (one region),
  // the results served and returned; and where the plan's arrays are in their regions.
  Region plan_, send_, recv_, recv_x_, recv_meta_dev_, recv_plan_, own_x_, served_, returned_;
  const int64_t* plan_slot_row_ = nullptr;
  const int32_t *own_ids_dev_ = nullptr, *recv_ids_dev_ = nullptr;
  const float *own_weights_dev_ = nullptr, *recv_weights_dev_ = nullptr;
  ExchangeThread exchanges_;  // last: its thread stops before the buffers above go
};

}  // namespace v4
