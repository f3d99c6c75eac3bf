// Routed experts split between two memories (model/v4/expert_tiers.h): each MoE layer's hot
// experts run on the device from the compacted stacks DeviceWeights holds, its cold ones on the
// CPU from the host weights (the mapped file). Per layer: the routing comes back to the host
// (n·k ids and weights, n rows), one dispatch plan numbers every (token, slot) pair's row —
// hot experts' rows first, grouped by hot slot, then the cold pairs' rows in token-then-slot
// order — the device runs the hot rows while the CPU runs the cold ones, the cold results go up
// into their rows, and the device sums each token's slots in selection order (spec §3.5). A
// row's result depends only on its token's input and its expert, so a token's sum never
// depends on its batch.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "model/v4/expert_dispatcher.h"
#include "model/v4/expert_tiers.h"
#include "model/v4/v4_weights.h"

namespace v4 {

class TieredExpertDispatcher final : public ExpertDispatcher {
 public:
  // `device` runs the forward and the hot experts; `host` (a CPU backend) the cold ones from
  // `host_weights`' stacks. `tiers` must be the ones the device weights were uploaded with.
  static Result<std::unique_ptr<TieredExpertDispatcher>> create(Backend& device, Backend& host,
                                                                const V4Weights& host_weights,
                                                                ExpertTiers tiers);
  // The same, owning its host backend.
  static Result<std::unique_ptr<TieredExpertDispatcher>> create(Backend& device,
                                                                std::unique_ptr<Backend> host,
                                                                const V4Weights& host_weights,
                                                                ExpertTiers tiers);

  void dispatch_combine(uint32_t layer, const ExpertFfnWeights& experts, const RoutedTokens& tokens,
                        float* out, FunctionRef<void()> meanwhile) override;
  // A failed copy between the memories (the layer's sum was not written).
  Status take_error() override { return std::exchange(error_, Status::ok()); }
  // The device buffers of both paths: the layers held whole, and the split ones' (the hot
  // experts' buckets and one for the cold rows' results).
  void reserve(int64_t tokens, uint32_t k, int64_t n_embd, uint32_t n_expert) override {
    whole_.reserve(tokens, k, n_embd, n_expert);
    device_buffers_.ensure(tokens * k, n_embd, n_expert + 1);
  }
  static uint64_t bytes_for(int64_t tokens, uint32_t k, int64_t n_embd, uint32_t n_expert) {
    return LocalExpertDispatcher::bytes_for(tokens, k, n_embd, n_expert) +
           ExpertDispatchBuffers::bytes_for(tokens * k, n_embd, n_expert + 1);
  }
  uint64_t buffer_bytes() const override { return whole_.buffer_bytes() + device_buffers_.bytes(); }

  // Pairs run on each side since start (the share the CPU carries).
  uint64_t hot_pairs() const { return hot_pairs_; }
  uint64_t cold_pairs() const { return cold_pairs_; }

 private:
  TieredExpertDispatcher(Backend& device, Backend& host, const V4Weights& host_weights,
                         ExpertTiers tiers);
  // The plan on the host: hot pairs by slot, cold pairs after them.
  void plan(uint32_t layer, const RoutedTokens& in);
  // The cold rows through the host's experts, into staging_ in the plan's cold order.
  void run_cold(uint32_t layer, const RoutedTokens& in);

  Backend& device_;
  std::unique_ptr<Backend> owned_host_;
  Backend& host_;
  const V4Weights& host_weights_;
  ExpertTiers tiers_;
  std::vector<std::vector<int32_t>> slots_;  // [layer][expert]: hot slot or -1
  LocalExpertDispatcher whole_;              // layers the device holds whole, and the MTP block
  uint64_t hot_pairs_ = 0, cold_pairs_ = 0;

  // Host side: the routing read back and the plan (offsets, source tokens, slot rows).
  std::vector<int32_t> ids_, bucket_of_;
  std::vector<float> weights_, x_, row_scale_;
  std::vector<int64_t> plan_ints_;
  int64_t hot_rows_ = 0;
  // The cold pairs (j, in the plan's order) and their own grouping by expert (rows r).
  std::vector<int32_t> cold_ids_;
  std::vector<float> cold_weights_, cold_row_scale_, cold_in_, cold_out_, staging_;
  std::vector<int64_t> cold_token_, cold_offsets_, cold_pair_of_row_, cold_row_of_pair_,
      cold_row_token_;
  Status error_;

  // Device side: the plan's arrays and every pair's result row.
  ExpertDispatchBuffers device_buffers_;
};

}  // namespace v4
