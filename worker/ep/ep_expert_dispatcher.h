// The expert-parallel ExpertDispatcher (spec §3.5 across ranks). Per MoE layer every rank of the
// group, busy or not: (1) sorts its (token, slot) pairs by the rank owning the expert and packs
// each pair's row with its expert id and weight, (2) all-gathers the per-rank pair counts and
// all-to-alls the rows to their owners, while the caller's shared expert runs, (3) runs the
// peers' rows through LocalExpertDispatcher (one slot per row, so each row comes back weighted,
// unsummed), (4) all-to-alls those results back while its own rows (which never leave it) run
// through its experts, and (5) sums each token's slots in selection order
// (Backend::sum_slots). A row's arithmetic is the same on any rank and in any call, and the sum
// order is fixed, so every token's output is bit-identical to one rank running every expert.
// The exchanges run on an ExchangeThread; with overlap off they run inline, in the same order.
//
// The exchange buffers are host memory (the Gloo communicator's); with CpuBackend that is the
// device memory the forward works in.
#pragma once

#include <cstdint>
#include <vector>

#include "model/v4/expert_dispatcher.h"
#include "worker/ep/exchange_thread.h"
#include "worker/ep/expert_comm.h"
#include "worker/ep/expert_placement.h"
#include "worker/step_group.h"

namespace v4 {

class EpExpertDispatcher final : public ExpertDispatcher {
 public:
  // Contiguous shards. `overlap`: the exchanges run beside the rank's own compute.
  EpExpertDispatcher(Backend& backend, ExpertComm& comm, uint32_t n_expert, bool overlap = true);
  // `placement` must be the same on every rank (WorkerGroup compares digests).
  EpExpertDispatcher(Backend& backend, ExpertComm& comm, ExpertPlacement placement,
                     bool overlap = true);

  void dispatch_combine(uint32_t layer, const ExpertFfnWeights& experts, const RoutedTokens& tokens,
                        float* out, FunctionRef<void()> meanwhile) override;
  bool collective() const override { return true; }
  Status take_error() override;

  const ExpertPlacement& placement() const { return placement_; }
  // Rows this rank sent to other ranks and computed for them, since construction.
  uint64_t rows_sent() const { return rows_sent_; }
  uint64_t rows_served() const { return rows_served_; }
  // Bytes and phase times since construction (joined_steps is the group's to count).
  const GroupTraffic& traffic() const { return traffic_; }

 private:
  Status exchange(uint32_t layer, const ExpertFfnWeights& experts, const RoutedTokens& in,
                  FunctionRef<void()> meanwhile);
  // Fills counts_, send_ (the peers' rows in send order), own_* (this rank's own pairs, which
  // never leave it), own_begin_ and slot_row_ (each pair's result row).
  void pack(uint32_t layer, const RoutedTokens& in);
  // On the exchange thread: the counts' all-gather and the rows' all-to-all into recv_.
  Status send_rows(uint32_t layer, int64_t width);
  // Wire rows into inputs for the experts; refuses a row for an expert this rank does not hold.
  Status unpack(uint32_t layer, const float* rows, int64_t count, int64_t d, float* x, int32_t* ids,
                float* weights) const;
  void account(double exposed, double& phase_seconds);

  Backend& backend_;
  ExpertComm& comm_;
  ExpertPlacement placement_;
  LocalExpertDispatcher local_;
  Status error_;
  uint64_t rows_sent_ = 0, rows_served_ = 0;
  GroupTraffic traffic_;
  // Reused across layers and steps: pairs in send order, the packed rows out and in, the
  // received rows unpacked, their results, and per-rank counts.
  std::vector<int64_t> send_order_, slot_row_, counts_, all_counts_, from_, send_bytes_,
      recv_bytes_;
  std::vector<float> send_, recv_, recv_x_, recv_weights_, served_, returned_;
  std::vector<int32_t> recv_experts_;
  std::vector<float> own_x_, own_weights_;
  std::vector<int32_t> own_experts_;
  int64_t own_begin_ = 0;     // where this rank's own results start in returned_
  int64_t received_ = 0;      // rows from peers this layer
  ExchangeThread exchanges_;  // last: its thread stops before the buffers above go
};

}  // namespace v4
