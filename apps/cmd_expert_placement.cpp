// `v4serve expert-placement --model F --stats TRACE`: what balanced placement would do with a
// recorded trace (the router's /metrics served with --metrics-expert-detail). For each group
// size and replica count it prints the busiest rank's load over the mean (mean and worst over
// the MoE layers) for contiguous shards and for balanced placement, and per layer the hot set:
// the fewest experts taking --coverage of the selections, and the expert bytes a single node
// keeps out of fast memory by holding only those.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "apps/command.h"
#include "model/v4/v4_forward_model.h"
#include "worker/ep/expert_placement.h"

namespace v4::apps {
namespace {

struct PlacementFlags {
  std::string model, stats;
  std::string ranks = "2,4,8";
  std::string redundant = "0,1,2";
  double coverage = 0.9;
};

Result<std::vector<uint32_t>> parse_list(const std::string& text, const char* flag) {
  std::vector<uint32_t> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      const unsigned long v = std::stoul(item, &used);
      if (used != item.size() || v > 4096) throw std::out_of_range(item);
      out.push_back(static_cast<uint32_t>(v));
    } catch (const std::exception&) {
      return Status::error(std::string(flag) + ": '" + item + "' is not a count up to 4096");
    }
  }
  if (out.empty()) return Status::error(std::string(flag) + ": empty list");
  return out;
}

std::pair<double, double> mean_and_worst(const std::vector<double>& per_layer) {
  const double sum = std::accumulate(per_layer.begin(), per_layer.end(), 0.0);
  return {sum / static_cast<double>(per_layer.size()),
          *std::max_element(per_layer.begin(), per_layer.end())};
}

int run(const PlacementFlags& f) {
  Result<std::unique_ptr<V4Model>> model = load_v4_model(f.model);
  if (!model) return std::fprintf(stderr, "error: %s\n", model.message().c_str()), 1;
  const V4Config& c = (*model)->weights.config;
  Result<ExpertLoad> load = read_expert_load(f.stats, c.n_layer, c.n_expert);
  if (!load) return std::fprintf(stderr, "error: %s\n", load.message().c_str()), 2;
  Result<std::vector<uint32_t>> ranks = parse_list(f.ranks, "--ranks");
  Result<std::vector<uint32_t>> redundant = parse_list(f.redundant, "--redundant");
  if (!ranks || !redundant) {
    std::fprintf(stderr, "error: %s\n", (!ranks ? ranks.message() : redundant.message()).c_str());
    return 2;
  }
  std::printf("busiest rank's load / mean (mean over %u MoE layers, worst layer)\n", c.n_layer);
  std::printf("%6s %10s %20s %20s\n", "ranks", "redundant", "contiguous", "balanced");
  for (uint32_t n : *ranks) {
    if (n < 1) continue;
    const auto con = mean_and_worst(
        ExpertPlacement::contiguous(c.n_expert, static_cast<int>(n)).imbalance(*load));
    for (uint32_t r : *redundant) {
      Result<ExpertPlacement> b = ExpertPlacement::balanced(*load, static_cast<int>(n), r);
      if (!b) return std::fprintf(stderr, "error: %s\n", b.message().c_str()), 1;
      const auto bal = mean_and_worst(b->imbalance(*load));
      std::printf("%6u %10u %9.3f / %8.3f %9.3f / %8.3f\n", n, r, con.first, con.second, bal.first,
                  bal.second);
    }
  }
  const std::vector<uint32_t> hot = hot_set_sizes(*load, f.coverage);
  std::printf("\nhot set per layer (experts taking %.0f%% of its selections, of %u)\n",
              100 * f.coverage, c.n_expert);
  double saved = 0, total = 0;
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& w = (*model)->weights.layers[l];
    const double per_expert =
        static_cast<double>(w.gate_exps.mat_bytes + w.up_exps.mat_bytes + w.down_exps.mat_bytes);
    saved += per_expert * (c.n_expert - hot[l]);
    total += per_expert * c.n_expert;
    std::printf("layer %2u: %4u experts%s", l, hot[l],
                (l % 4 == 3 || l + 1 == c.n_layer) ? "\n" : "   ");
  }
  std::printf("routed-expert bytes outside the hot sets: %.1f MiB of %.1f MiB (%.1f%%)\n",
              saved / 1048576.0, total / 1048576.0, total > 0 ? 100 * saved / total : 0.0);
  return 0;
}

CommandRegistration expert_placement_command(
    "expert-placement", "expert load balance and hot sets of a recorded trace", [](CLI::App& sub) {
      auto f = std::make_shared<PlacementFlags>();
      sub.add_option("--model", f->model, "model GGUF (its shape and expert sizes)")->required();
      sub.add_option("--stats", f->stats,
                     "trace: the router's /metrics served with --metrics-expert-detail")
          ->required();
      sub.add_option("--ranks", f->ranks, "group sizes")->capture_default_str();
      sub.add_option("--redundant", f->redundant, "extra replicas per rank")->capture_default_str();
      sub.add_option("--coverage", f->coverage, "share of selections the hot set takes")
          ->capture_default_str()
          ->check(CLI::Range(0.0, 1.0));
      return [f] { return run(*f); };
    });

}  // namespace
}  // namespace v4::apps
