// Full-scale synthetic weights without a full-scale file: a small template model (every layer
// kind, a few routed experts) scaled up to the real layer and expert counts for speed
// measurements. Layer l copies the template layer of its kind (compress ratio, hash routing);
// routed expert e copies template expert e mod the template's count. The router (and its bias)
// is generated for the full expert count with the same seeded values gen-model writes, so
// selection spreads over every expert, and hash-routed layers get ids over every expert. The
// bytes a step reads are the real model's: each copy is its own device memory.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "model/v4/v4_weights.h"

namespace v4 {

struct ReplicatedWeights {
  V4Weights weights;         // the target config; matrices point into the template's memory
  int64_t template_experts;  // host matrices behind each routed-expert stack
  std::vector<std::unique_ptr<std::vector<uint8_t>>> owned;  // generated routers
};

// `target` must have the template's dimensions; its layer and expert counts may be larger.
// The template must hold every layer kind target uses, and target's experts must be a multiple
// of the template's.
Result<ReplicatedWeights> replicate_weights(const V4Weights& tmpl, const V4Config& target,
                                            uint64_t seed);

// Routed-expert matrices the host holds for `m` (see DeviceWeights::upload): fewer than
// m.n_mats for the replicated stacks.
int64_t replicated_host_mats(const ReplicatedWeights& r, const WeightMatrix& m);

}  // namespace v4
