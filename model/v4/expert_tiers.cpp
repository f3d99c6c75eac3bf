#include "model/v4/expert_tiers.h"

#include <algorithm>
#include <numeric>
#include <string>

namespace v4 {

std::vector<int32_t> ExpertTiers::slots(uint32_t layer, uint32_t n_expert) const {
  std::vector<int32_t> out(n_expert, -1);
  if (all_hot(layer, n_expert)) {
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  for (size_t i = 0; i < hot[layer].size(); ++i)
    if (hot[layer][i] >= 0 && static_cast<uint32_t>(hot[layer][i]) < n_expert)
      out[static_cast<size_t>(hot[layer][i])] = static_cast<int32_t>(i);
  return out;
}

Status ExpertTiers::validate(uint32_t n_layer, uint32_t n_expert) const {
  if (hot.size() > n_layer)
    return Status::error("expert tiers: " + std::to_string(hot.size()) + " layers for a model of " +
                         std::to_string(n_layer));
  for (size_t l = 0; l < hot.size(); ++l) {
    for (size_t i = 0; i < hot[l].size(); ++i) {
      const int32_t e = hot[l][i];
      if (e < 0 || static_cast<uint32_t>(e) >= n_expert || (i > 0 && e <= hot[l][i - 1]))
        return Status::error("expert tiers: layer " + std::to_string(l) +
                             ": hot expert ids must ascend below " + std::to_string(n_expert));
    }
  }
  return Status::ok();
}

uint64_t ExpertTiers::cold_count(uint32_t n_expert) const {
  uint64_t n = 0;
  for (uint32_t l = 0; l < hot.size(); ++l)
    n += all_hot(l, n_expert) ? 0 : n_expert - hot[l].size();
  return n;
}

ExpertTiers hot_experts(const std::vector<std::vector<uint64_t>>& load, double coverage) {
  ExpertTiers tiers;
  for (const std::vector<uint64_t>& counts : load) {
    std::vector<int32_t> order(counts.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return counts[a] > counts[b]; });
    const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
    double taken = 0;
    size_t n = 0;
    while (n < order.size() && taken < coverage * total && counts[order[n]] > 0)
      taken += static_cast<double>(counts[order[n++]]);
    std::vector<int32_t> layer(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n));
    std::sort(layer.begin(), layer.end());
    tiers.hot.push_back(std::move(layer));
  }
  return tiers;
}

}  // namespace v4
