// Memory tiers of the routed experts (docs/expert-parallelism.md, "Memory tiers"): a node whose
// device cannot hold every routed expert keeps each MoE layer's hot set — the fewest experts
// that took a given share of the layer's selections on a recorded trace — in device memory,
// and the others stay in host memory (the mapped file) and run on the CPU
// (TieredExpertDispatcher). Where an expert runs is fixed for the run, so a token's result
// never depends on its batch; it may differ in the last bits from an all-device run, as the CPU
// and device kernels do.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace v4 {

struct ExpertTiers {
  // [layer] -> the layer's hot experts, ids ascending. Layers past the end, and the MTP block,
  // keep every expert on the device.
  std::vector<std::vector<int32_t>> hot;

  // Whether `layer` keeps all n_expert experts on the device.
  bool all_hot(uint32_t layer, uint32_t n_expert) const {
    return layer >= hot.size() || hot[layer].size() >= n_expert;
  }
  // [expert] -> its slot among the layer's hot experts (their order on the device), or -1.
  std::vector<int32_t> slots(uint32_t layer, uint32_t n_expert) const;
  // An error unless every layer's ids are ascending, distinct and below n_expert, for at most
  // n_layer layers.
  Status validate(uint32_t n_layer, uint32_t n_expert) const;
  // Routed experts kept in host memory, over all layers.
  uint64_t cold_count(uint32_t n_expert) const;
};

// From per-layer selection counts ([layer][expert]): per layer, the most selected experts
// (ties: the lower id first) until they take `coverage` (0 to 1) of the layer's selections. A
// layer with no selections keeps none; coverage 1 keeps every expert any token selected.
ExpertTiers hot_experts(const std::vector<std::vector<uint64_t>>& load, double coverage);

}  // namespace v4
