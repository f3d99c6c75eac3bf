#include "apps/device_setup.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>

#include "apps/progress_bar.h"
#include "model/backend/cpu_backend.h"
#include "model/backend/device/backend_factory.h"
#include "model/backend/device/scratch_bound.h"
#include "model/v4/forward_workspace.h"
#include "model/v4/step_shapes.h"
#include "model/v4/tiered_expert_dispatcher.h"
#include "model/v4/v4_forward.h"
#include "worker/ep/ep_expert_dispatcher.h"

namespace v4::apps {
namespace {

std::string gib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f GiB", static_cast<double>(bytes) / (1ull << 30));
  return text;
}

// The kernels' scratch for steps of up to `tokens` tokens and recorded decode steps of up to
// `rows` sequences: what the backend reserves, and what the fit check counts.
void reserve_scratch(DeviceReserve& r, const V4Weights& weights, int64_t tokens, int64_t rows,
                     int64_t context, int64_t routed_rows_per_token, KvStorage storage) {
  r.scratch = scratch_shapes(weights, tokens, rows, context, routed_rows_per_token, storage);
  r.scratch_bytes = device::scratch_need(r.scratch.steps, {}).total() +
                    device::scratch_need(r.scratch.recorded_steps, {}).total();
}

// What the routed experts' dispatcher keeps on the device for the reserve's steps (each
// dispatcher's bytes_for): a group rank's exchange regions, the tiers' two paths, or one rank's.
uint64_t dispatcher_bytes(const V4Config& c, const DeviceReserve& r, bool tiered) {
  const int64_t n = r.dispatch_tokens;
  if (n <= 0) return 0;
  if (r.ranks > 1) {
    return EpExpertDispatcher::bytes_for(static_cast<int>(r.ranks), n, c.n_expert_used, c.n_embd,
                                         c.n_expert);
  }
  if (tiered) return TieredExpertDispatcher::bytes_for(n, c.n_expert_used, c.n_embd, c.n_expert);
  return LocalExpertDispatcher::bytes_for(n, c.n_expert_used, c.n_embd, c.n_expert);
}

// What the plans may fill: kDeviceMemoryUtilization of the device's free memory.
uint64_t usable_bytes(const device::DeviceMemory& memory) {
  return static_cast<uint64_t>(static_cast<double>(memory.free_bytes) * kDeviceMemoryUtilization);
}

// "X of the Y usable (90% of Z free)", for the refusals.
std::string share_of_usable(uint64_t bytes, const device::DeviceMemory& memory) {
  const int percent = static_cast<int>(kDeviceMemoryUtilization * 100 + 0.5);
  return gib(bytes) + " of the " + gib(usable_bytes(memory)) + " usable (" +
         std::to_string(percent) + "% of " + gib(memory.free_bytes) + " free)";
}

// The memory the fit check sees: a GPU's free memory; an emulated device's size when it has one
// ("emulated:G"), else the host's, unbounded (reported as 0 total).
Result<device::DeviceMemory> memory_of(const device::DeviceSpec& spec) {
  if (!spec.emulated) return device::device_memory(spec);
  if (spec.emulated_bytes > 0)
    return device::DeviceMemory{spec.emulated_bytes, spec.emulated_bytes, "emulated device"};
  return device::DeviceMemory{~uint64_t{0}, 0, "host"};
}

// The routed experts that go to the device where not all of them: the tiers' hot sets, or a group
// rank's share (a group rank has no tiers: tiers are refused in groups).
const ExpertTiers* experts_on_device(const ExpertTiers* tiers, const ExpertTiers* group_share) {
  return tiers ? tiers : group_share;
}

// What goes on the device beside `reserve`: the weights (of experts_on_device) and the routed
// experts' dispatcher's buffers.
struct BesideReserve {
  uint64_t weights = 0, dispatch = 0;
  // The fit check's sum: these, and the reserve itself.
  uint64_t plus(const DeviceReserve& reserve) const { return weights + dispatch + reserve.total(); }
};
BesideReserve beside_reserve(const V4Weights& host, const DeviceReserve& reserve,
                             const ExpertTiers* tiers, const ExpertTiers* group_share) {
  return {resident_weight_bytes(host, experts_on_device(tiers, group_share)),
          dispatcher_bytes(host.config, reserve, tiers != nullptr)};
}

// The free memory of a device that bounds the plans; nullopt where the forward runs in host
// memory (the CPU; "emulated" without a size).
Result<std::optional<device::DeviceMemory>> bounded_memory(const std::string& device) {
  Result<device::DeviceSpec> spec = device::parse_device(device);
  if (!spec) return spec.status();
  if (!spec->bounds_memory()) return std::optional<device::DeviceMemory>{};
  Result<device::DeviceMemory> memory = memory_of(*spec);
  if (!memory) return memory.status();
  return std::optional<device::DeviceMemory>{*memory};
}

}  // namespace

Result<uint64_t> device_kv_budget(const std::string& device, const V4Weights& host,
                                  const DeviceReserve& reserve, const ExpertTiers* tiers,
                                  const ExpertTiers* group_share) {
  Result<std::optional<device::DeviceMemory>> memory = bounded_memory(device);
  if (!memory) return memory.status();
  if (!*memory) return uint64_t{0};
  const uint64_t usable = usable_bytes(**memory);
  const uint64_t other =
      beside_reserve(host, reserve, tiers, group_share).plus(reserve) - reserve.kv_bytes;
  if (other >= usable) {
    return Status::error("no room for the KV cache on the device: the weights and the step " +
                         ("memory take " + share_of_usable(other, **memory)) +
                         "; a smaller --max-batch-tokens or --ctx shrinks the step memory");
  }
  return usable - other;
}

Result<uint32_t> layers_that_fit(
    const std::string& device, const V4Weights& host, uint32_t min_layers,
    const std::function<DeviceReserve(const V4Weights&)>& reserve_for) {
  Result<std::optional<device::DeviceMemory>> memory = bounded_memory(device);
  if (!memory) return memory.status();
  if (!*memory) return host.config.n_layer;
  const uint64_t usable = usable_bytes(**memory);
  min_layers = std::clamp<uint32_t>(min_layers, 1, host.config.n_layer);
  uint64_t need = 0;
  for (uint32_t n = host.config.n_layer; n >= min_layers; --n) {
    const V4Weights cut = first_layers(host, n);
    const DeviceReserve reserve = reserve_for(cut);
    need = beside_reserve(cut, reserve, nullptr, nullptr).plus(reserve);
    if (need <= usable) return n;
  }
  return Status::error("not even " + std::to_string(min_layers) +
                       " layers fit the device: " + share_of_usable(need, **memory));
}

DeviceReserve step_reserve(const V4Weights& weights, int64_t tokens, int64_t decode_rows,
                           int64_t context) {
  DeviceReserve r;
  r.workspace_bytes = ForwardWorkspace::bytes_for(weights.config, tokens);
  reserve_scratch(r, weights, tokens, decode_rows, context, weights.config.n_expert_used,
                  KvStorage::kF32);
  r.dispatch_tokens = tokens;
  return r;
}

DeviceReserve engine_reserve(const V4Weights& weights, uint64_t kv_memory_bytes, KvStorage storage,
                             uint32_t max_batch_tokens, uint32_t max_seqs, uint32_t max_context,
                             uint32_t ranks) {
  DeviceReserve r;
  r.kv_bytes = kv_memory_bytes;
  r.workspace_bytes = ForwardWorkspace::bytes_for(weights.config, max_batch_tokens);
  reserve_scratch(r, weights, max_batch_tokens, max_seqs, max_context,
                  int64_t{ranks} * weights.config.n_expert_used, storage);
  r.dispatch_tokens = max_batch_tokens;
  r.ranks = ranks;
  return r;
}

Result<PreparedDevice> prepare_device(const std::string& device, unsigned threads,
                                      const V4Weights& host, const DeviceReserve& reserve,
                                      UploadProgressTo progress_to,
                                      const DeviceWeights::HostMats& host_mats,
                                      const ExpertTiers* tiers, const ExpertTiers* group_share) {
  Result<device::DeviceSpec> spec = device::parse_device(device);
  if (!spec) return spec.status();
  PreparedDevice out;
  out.weights = &host;
  double next_report = 0;
  if (spec->kind == DeviceKind::kCpu && !spec->emulated) {
    if (tiers)
      return Status::error(
          "--expert-tiers needs a device (--device cuda or emulated): on the CPU every expert is "
          "in host memory already");
    Result<std::unique_ptr<Backend>> be = device::make_backend(*spec, threads);
    if (!be) return be.status();
    out.backend = std::move(*be);
    return out;
  }
  Result<device::DeviceMemory> memory = memory_of(*spec);
  if (!memory) return memory.status();
  const ExpertTiers* on_device = experts_on_device(tiers, group_share);
  const BesideReserve beside = beside_reserve(host, reserve, tiers, group_share);
  const auto [weights, dispatch] = beside;
  const uint64_t need = beside.plus(reserve);
  const std::string plan = "weights " + gib(weights) + " + KV " + gib(reserve.kv_bytes) +
                           " + step workspace " + gib(reserve.workspace_bytes) +
                           " + kernel scratch " + gib(reserve.scratch_bytes) +
                           " + expert dispatch " + gib(dispatch);
  if (Status s = check_device_fit(need, memory->free_bytes, plan); !s) return s;
  out.planned_bytes = need;
  out.free_bytes = spec->bounds_memory() ? memory->free_bytes : 0;
  const std::string fits =
      "device memory: " + plan + " = " + gib(need) +
      (spec->bounds_memory() ? ", " + gib(memory->free_bytes) + " free" : " (host memory)");
  if (progress_to == UploadProgressTo::kLog) {
    spdlog::info("{}", fits);
  } else {
    std::fprintf(stderr, "%s\n", fits.c_str());
  }
  Result<std::unique_ptr<Backend>> be = device::make_backend(*spec, threads);
  if (!be) return be.status();
  out.backend = std::move(*be);
  if (Status s =
          out.backend->reserve_scratch(reserve.scratch.steps, reserve.scratch.recorded_steps);
      !s)
    return s;
  const std::string label = "weights → " + device + " (" + memory->name + ")";
  std::optional<ProgressBar> bar;
  if (progress_to == UploadProgressTo::kLog) bar.emplace(label, weights);
  const auto start = std::chrono::steady_clock::now();
  Result<std::unique_ptr<DeviceWeights>> resident = DeviceWeights::upload(
      host, *out.backend,
      [&](const UploadProgress& p) {
        if (bar) {
          bar->update(p.bytes_done);
        } else if (p.bytes_done == p.bytes_total || p.seconds >= next_report) {
          next_report = p.seconds + 1.0;
          const double rate = p.seconds > 0 ? p.bytes_done / p.seconds : 0.0;
          std::fprintf(stderr, "%s: %.1f / %.1f MiB, %.2f GB/s, ETA %.0f s\n", label.c_str(),
                       p.bytes_done / 1048576.0, p.bytes_total / 1048576.0, rate / 1e9,
                       rate > 0 ? (p.bytes_total - p.bytes_done) / rate : 0.0);
        }
      },
      host_mats, on_device);
  if (!resident) return resident.status();
  if (bar) bar->finish();
  out.upload_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.resident = std::move(*resident);
  out.weights = &out.resident->weights();
  if (group_share && !tiers) {
    std::fprintf(
        stderr,
        "expert parallelism: this rank holds %llu of %llu routed experts, %s of weights "
        "on the device instead of %s\n",
        static_cast<unsigned long long>(uint64_t{host.config.n_expert} * host.config.n_layer -
                                        group_share->cold_count(host.config.n_expert)),
        static_cast<unsigned long long>(uint64_t{host.config.n_expert} * host.config.n_layer),
        gib(weights).c_str(), gib(resident_weight_bytes(host)).c_str());
  }
  if (!tiers) return out;
  Result<std::unique_ptr<TieredExpertDispatcher>> experts = TieredExpertDispatcher::create(
      *out.backend, std::make_unique<CpuBackend>(threads), host, *tiers);
  if (!experts) return experts.status();
  out.experts = std::move(*experts);
  const uint64_t cold = tiers->cold_count(host.config.n_expert);
  std::fprintf(
      stderr,
      "expert tiers: %llu of %llu routed experts stay in host memory and run on the CPU; "
      "%s of weights on the device instead of %s\n",
      static_cast<unsigned long long>(cold),
      static_cast<unsigned long long>(uint64_t{host.config.n_expert} * host.config.n_layer),
      gib(weights).c_str(), gib(resident_weight_bytes(host)).c_str());
  return out;
}

}  // namespace v4::apps
