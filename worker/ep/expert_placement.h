// Which rank of a worker group runs each routed expert of each MoE layer.
//  - Contiguous (the default): rank r of N owns experts [r·E/N, (r+1)·E/N) in every layer.
//  - Balanced (DeepSeek's EPLB, simplified): from measured per-layer selection counts, the
//    hottest experts get extra replicas (`redundant` per rank), and replicas are packed onto
//    ranks heaviest first, each to the least loaded rank with a free slot, so that ranks get
//    about equal load.
// A pair goes to the sender's own replica when it holds one, else to replica (sender mod
// replicas). Every replica holds the same weights and runs the same arithmetic, so the choice
// moves work, never a result: tokens stay bit-identical to one rank.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace v4 {

// Selection counts: [layer][expert].
using ExpertLoad = std::vector<std::vector<uint64_t>>;

class ExpertPlacement {
 public:
  ExpertPlacement(uint32_t n_expert, int ranks) : ExpertPlacement(contiguous(n_expert, ranks)) {}

  static ExpertPlacement contiguous(uint32_t n_expert, int ranks);
  // `load` must have one row of n_expert counts per layer; `redundant`: extra replicas per rank.
  static Result<ExpertPlacement> balanced(const ExpertLoad& load, int ranks, uint32_t redundant);

  // The rank that runs `expert` of `layer` for a pair `sender` routes.
  int owner(uint32_t layer, int32_t expert, int sender) const;
  bool holds(int rank, uint32_t layer, int32_t expert) const;
  // The experts of `layer` that `rank` holds, ids ascending (what a device rank uploads).
  std::vector<int32_t> held(int rank, uint32_t layer) const;
  int ranks() const { return ranks_; }
  uint32_t n_expert() const { return n_expert_; }
  // Replicas of `expert` in `layer` (ranks in ascending order).
  std::span<const int32_t> replicas(uint32_t layer, int32_t expert) const;
  // Each rank's share of `load` (split evenly over replicas; what owner() does for senders
  // spread evenly): per layer, the busiest rank over the mean (1: balanced).
  std::vector<double> imbalance(const ExpertLoad& load) const;
  // A digest of the table, which every rank of a group must agree on.
  uint64_t digest() const;

 private:
  ExpertPlacement(uint32_t n_expert, int ranks, std::vector<std::vector<std::vector<int32_t>>> t)
      : n_expert_(n_expert), ranks_(ranks), table_(std::move(t)) {}
  const std::vector<int32_t>& entry(uint32_t layer, int32_t expert) const;

  uint32_t n_expert_;
  int ranks_;
  // [layer][expert] -> ranks holding it; a single layer entry serves every layer (contiguous).
  std::vector<std::vector<std::vector<int32_t>>> table_;
};

// Per-layer counts from a Prometheus text dump of v4serve:expert_selections_total (served with
// --metrics-expert-detail; e.g. `curl ROUTER/metrics > stats.prom`). Layers and experts missing
// from the dump count zero; n_layer × n_expert must cover every sample.
Result<ExpertLoad> read_expert_load(const std::string& path, uint32_t n_layer, uint32_t n_expert);

// The fewest experts of each layer that together take `coverage` of its selections (the hot set
// a single node keeps in fast memory; the rest can stay in host memory).
std::vector<uint32_t> hot_set_sizes(const ExpertLoad& load, double coverage);

}  // namespace v4
