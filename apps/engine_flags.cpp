#include "apps/engine_flags.h"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>

#include "apps/device_setup.h"
#include "model/backend/device/backend_factory.h"
#include "model/backend/kv_row_codec.h"
#include "worker/ep/expert_placement.h"
#include "worker/kv_disk/model_identity.h"

namespace v4::apps {
namespace {

// Default KV budget: a quarter of the memory the kernel reports available, so the engine
// leaves room for the weights' page cache and the rest of the machine.
uint64_t default_kv_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  uint64_t kib = 0;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return (kib << 10) / 4;
  return uint64_t{1} << 30;
}

// The KV budget's pages, logged; an error naming the budget when it buys none.
Status check_kv_budget(const V4Config& config, const EngineOptions& o, const std::string& storage,
                       const char* source) {
  Result<uint32_t> pages = EngineCore::pages_for_budget(config, o);
  if (!pages) return pages.status();
  spdlog::info(
      "KV cache: {:.0f} MiB budget ({}), {} pages of {} tokens, {} storage, prefix "
      "caching {}",
      o.kv_memory_bytes / 1048576.0, source, *pages, o.page_tokens, storage,
      o.prefix_caching ? "on" : "off");
  return Status::ok();
}

// Whether the device sizes the KV budget (size_kv_for_device): no --kv-memory, and a GPU or an
// emulated device of a given size.
bool device_sizes_kv(const EngineFlags& f) {
  if (f.kv_memory_mib) return false;
  Result<device::DeviceSpec> spec = device::parse_device(f.device);
  return spec && spec->bounds_memory();
}

}  // namespace

Status size_kv_for_device(const EngineFlags& f, const V4Weights& weights, EngineOptions& options,
                          uint32_t ranks, const ExpertTiers* tiers,
                          const ExpertTiers* group_share) {
  if (!device_sizes_kv(f)) return Status::ok();
  const DeviceReserve beside = engine_reserve(weights, 0, options.storage, options.max_batch_tokens,
                                              options.max_seqs, options.max_context, ranks);
  Result<uint64_t> kv = device_kv_budget(f.device, weights, beside, tiers, group_share);
  if (!kv) return kv.status();
  options.kv_memory_bytes = *kv;
  return check_kv_budget(weights.config, options, f.kv_storage,
                         "what the device leaves: --kv-memory sets it");
}

void add_expert_tier_flags(CLI::App& sub, std::string& stats, double& coverage) {
  sub.add_option("--expert-tiers", stats,
                 "expert statistics (a /metrics dump with --metrics-expert-detail): only each "
                 "layer's hot experts go to the device (--device cuda or emulated), the rest run "
                 "on the CPU from host memory")
      ->check(CLI::ExistingFile);
  sub.add_option("--hot-coverage", coverage,
                 "with --expert-tiers: the share of a layer's selections its hot set takes")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 1.0));
}

Result<std::optional<ExpertTiers>> expert_tiers(const std::string& stats, double coverage,
                                                const V4Config& config) {
  if (stats.empty()) return std::optional<ExpertTiers>();
  const std::string flag = "--expert-tiers " + stats + ": ";
  if (!(coverage > 0 && coverage <= 1))
    return Status::error(flag + "--hot-coverage must be in (0, 1]");
  Result<ExpertLoad> load = read_expert_load(stats, config.n_layer, config.n_expert);
  if (!load) return Status::error(flag + load.message());
  return std::optional<ExpertTiers>(hot_experts(*load, coverage));
}

std::string default_model_name(const V4Model& model, const std::string& path) {
  if (Result<std::string> name = model.file.get_string("general.name"); name && !name->empty())
    return *name;
  return std::filesystem::path(path).stem().string();
}

Result<EngineOptions> engine_options(const EngineFlags& f, const V4Config& config) {
  Result<KvStorage> storage = kv_storage_from_name(f.kv_storage);
  if (!storage) return storage.status();
  EngineOptions o;
  o.storage = *storage;
  o.kv_memory_bytes = f.kv_memory_mib ? f.kv_memory_mib << 20 : default_kv_bytes();
  o.max_context = f.ctx;
  o.max_batch_tokens = f.max_batch_tokens;
  o.max_seqs = f.max_seqs;
  o.prefix_caching = !f.no_prefix_caching;
  o.step_graphs = f.step_graphs;
  o.graph_positions = f.graph_positions;
  o.graph_capture_seconds = f.graph_capture_seconds;
  // auto: on a GPU, where a recording saves the launches; the emulated device is for tests.
  o.capture_graphs =
      f.step_graphs > 0 &&
      (f.capture_graphs == "on" || (f.capture_graphs == "auto" && f.device.rfind("cuda", 0) == 0));
  if (!f.kv_disk.empty()) {
    if (!o.prefix_caching) return Status::error("--kv-disk needs prefix caching");
    if (!(f.kv_disk_gb > 0)) return Status::error("--kv-disk-gb must be positive");
    std::error_code error;
    std::filesystem::create_directories(f.kv_disk, error);
    if (error || !std::filesystem::is_directory(f.kv_disk))
      return Status::error("--kv-disk " + f.kv_disk + ": cannot create the directory" +
                           (error ? ": " + error.message() : ""));
    o.kv_disk_dir = f.kv_disk;
    o.kv_disk_bytes = static_cast<uint64_t>(f.kv_disk_gb * double(uint64_t{1} << 30));
  }
  if (device_sizes_kv(f)) return o;
  if (Status s = check_kv_budget(config, o, f.kv_storage,
                                 f.kv_memory_mib ? "--kv-memory" : "a quarter of available memory");
      !s)
    return s;
  return o;
}

Result<EngineOptions> engine_options(const EngineFlags& f, const V4Model& model) {
  Result<EngineOptions> o = engine_options(f, model.weights.config);
  if (!o) return o;
  if (f.speculative_tokens > 0 && !model.weights.mtp)
    return Status::error(
        "--speculative-tokens needs a model with an MTP block (--mtp FILE for "
        "a separate ds4 MTP file)");
  o->speculative_tokens = f.speculative_tokens;
  o->speculative_max_batch = f.speculative_max_batch;
  if (o->kv_disk_dir.empty()) return o;
  // Pages computed by another device kind's kernels may differ in their last bits.
  const std::string kind = f.device.substr(0, f.device.find(':'));
  o->model_identity = model_identity_on_device(
      model_identity(model.file, model.mtp_file ? &*model.mtp_file : nullptr), kind);
  spdlog::info("KV disk store: {}, up to {:.1f} GiB, model identity {:016x}", o->kv_disk_dir,
               f.kv_disk_gb, o->model_identity);
  return o;
}

void add_engine_flags(CLI::App& sub, EngineFlags& f) {
  sub.add_option("--threads", f.threads, "engine threads (default: one per core)");
  sub.add_option("--device", f.device, kDeviceHelp)->capture_default_str();
  sub.add_option("--kv-memory", f.kv_memory_mib,
                 "KV cache budget in MiB (default: a quarter of available memory; on a GPU, "
                 "90% of its free memory less the weights and the step memory)");
  sub.add_option("--ctx", f.ctx, "per-request context limit (prompt + output)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 20));
  sub.add_option("--max-batch-tokens", f.max_batch_tokens, "tokens per engine step")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 16));
  sub.add_option("--max-seqs", f.max_seqs, "sequences per engine step")
      ->capture_default_str()
      ->check(CLI::Range(1u, 4096u));
  sub.add_option("--kv-storage", f.kv_storage, "f32, f16 or fp8")->capture_default_str();
  sub.add_flag("--no-prefix-caching", f.no_prefix_caching,
               "do not share KV pages between requests with equal prompt prefixes");
  sub.add_option("--kv-disk", f.kv_disk,
                 "directory where cached prefix pages spill when evicted from memory and are "
                 "found again, also after a restart");
  sub.add_option("--mtp", f.mtp,
                 "ds4's separate MTP GGUF (<model>-mtp.gguf), for speculative decoding")
      ->check(CLI::ExistingFile);
  sub.add_option("--speculative-tokens", f.speculative_tokens,
                 "MTP drafts each decode step verifies, for requests that do not choose (0: off; "
                 "never changes the tokens)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 3u));
  sub.add_option("--speculative-max-batch", f.speculative_max_batch,
                 "steps with more running requests than this verify no drafts (0: no limit); "
                 "on a CPU a larger batch is compute-bound and drafts slow it")
      ->capture_default_str();
  sub.add_option("--step-graphs", f.step_graphs,
                 "decode-step shapes kept recorded as CUDA graphs on a GPU (0: off; never "
                 "changes a token)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 4096u));
  sub.add_option("--capture-graphs", f.capture_graphs,
                 "record the decode steps of every padded batch size up to --max-seqs before "
                 "serving (auto: on a GPU)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  sub.add_option("--graph-capture-seconds", f.graph_capture_seconds,
                 "the most start-up time --capture-graphs spends; the other shapes are recorded "
                 "on first use")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  sub.add_option("--graph-positions", f.graph_positions,
                 "decode steps whose positions are all below this share recordings sized for it")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{256}, uint64_t{1} << 24));
  add_expert_tier_flags(sub, f.expert_tiers, f.hot_coverage);
  sub.add_option("--kv-disk-gb", f.kv_disk_gb, "size bound of --kv-disk in GiB (LRU eviction)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
}

}  // namespace v4::apps
