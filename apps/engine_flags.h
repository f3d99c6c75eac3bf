// The engine's flags, shared by `serve` and `worker`, and the EngineOptions they give.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/status.h"
#include "model/v4/expert_tiers.h"
#include "model/v4/v4_forward_model.h"
#include "worker/engine_core.h"

namespace CLI {
class App;
}

namespace v4::apps {

// Decode batches above this verify no MTP drafts by default. Measured on the 2-core CPU worker
// (README, bench-engine on a 12-layer flash-shape model with an agreeing MTP block): drafts gain
// 1.1-1.3x for one sequence and lose at two already (0.87-0.91x at 2, 4 and 8), where the
// two-token kernels make a step's second token cheap. A GPU's crossover is surely higher but has
// not been measured: raise --speculative-max-batch there.
constexpr uint32_t kDefaultSpeculativeMaxBatch = 1;

struct EngineFlags {
  unsigned threads = 0;
  std::string device = "cpu";
  uint64_t kv_memory_mib = 0;
  uint32_t ctx = 4096;
  uint32_t max_batch_tokens = 256;
  uint32_t max_seqs = 64;
  std::string kv_storage = "f32";
  bool no_prefix_caching = false;
  std::string kv_disk;              // directory of cached prefix pages that survive a restart
  double kv_disk_gb = 10.0;         // its size bound
  uint32_t speculative_tokens = 0;  // MTP drafts per decode step for requests that do not choose
  uint32_t speculative_max_batch = kDefaultSpeculativeMaxBatch;
  std::string mtp;  // ds4's separate MTP file (llama.cpp files hold the block in the main file)
  std::string expert_tiers;  // expert statistics: only each layer's hot set on the device
  double hot_coverage = 0.9;
  uint32_t step_graphs = 64;  // EngineOptions::step_graphs
  // EngineOptions::capture_graphs: auto (on a GPU), on or off; its budget; graph_positions.
  std::string capture_graphs = "auto";
  double graph_capture_seconds = 60;
  uint64_t graph_positions = 4096;
};

void add_engine_flags(CLI::App& sub, EngineFlags& f);
// Logs the KV budget it buys (or, without --kv-memory on a device that bounds memory, leaves it
// to size_kv_for_device).
Result<EngineOptions> engine_options(const EngineFlags& f, const V4Config& config);
// The same for a loaded model: with --kv-disk, the page files carry the model's identity.
Result<EngineOptions> engine_options(const EngineFlags& f, const V4Model& model);
// Without --kv-memory, on a device that bounds memory (cuda, emulated:G): the KV budget becomes
// what the device leaves after the weights and the step memory (device_kv_budget), checked and
// logged as engine_options does the host default. `ranks`, `tiers` and `group_share` as for
// engine_reserve and prepare_device. Nothing in the other cases.
Status size_kv_for_device(const EngineFlags& f, const V4Weights& weights, EngineOptions& options,
                          uint32_t ranks = 1, const ExpertTiers* tiers = nullptr,
                          const ExpertTiers* group_share = nullptr);
// --expert-tiers and --hot-coverage (serve, worker, bench).
void add_expert_tier_flags(CLI::App& sub, std::string& stats, double& coverage);
// With a statistics file (a Prometheus dump of v4serve:expert_selections_total, see
// `v4serve expert-placement`), per layer the experts taking `coverage` of its selections; none
// without one.
Result<std::optional<ExpertTiers>> expert_tiers(const std::string& stats, double coverage,
                                                const V4Config& config);
// The file's general.name, or its file name without extension.
std::string default_model_name(const V4Model& model, const std::string& path);

}  // namespace v4::apps
