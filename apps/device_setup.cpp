#include "apps/device_setup.h"

#include <chrono>
#include <cstdio>
#include <optional>

#include "apps/progress_bar.h"
#include "model/backend/cpu_backend.h"
#include "model/backend/device/backend_factory.h"
#include "model/v4/forward_workspace.h"
#include "model/v4/tiered_expert_dispatcher.h"

namespace v4::apps {
namespace {

std::string gib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f GiB", static_cast<double>(bytes) / (1ull << 30));
  return text;
}

}  // namespace

uint64_t engine_reserve_bytes(const V4Config& config, uint64_t kv_memory_bytes,
                              uint32_t max_batch_tokens) {
  return kv_memory_bytes + ForwardWorkspace::bytes_for(config, max_batch_tokens);
}

Result<PreparedDevice> prepare_device(const std::string& device, unsigned threads,
                                      const V4Weights& host, uint64_t reserve_bytes,
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
  Result<device::DeviceMemory> memory =
      spec->emulated ? Result<device::DeviceMemory>(device::DeviceMemory{~uint64_t{0}, 0, "host"})
                     : device::device_memory(*spec);
  if (!memory) return memory.status();
  // The kernels' scratch: a fixed allowance. The attention ops keep theirs under
  // DeviceOpOptions::attention_scratch_bytes (256 MiB, taking a step's tokens in groups), the
  // indexer's too; the rest grows with the step (the expert FFN's hidden rows, quantized
  // activations: about 100 KiB a token on the full-size model). The forward's own workspace is
  // the caller's, in reserve_bytes.
  constexpr uint64_t kKernelScratch = uint64_t{1} << 30;
  // Both name the experts that go to the device (a group rank has no tiers: tiers are refused in
  // groups).
  const ExpertTiers* on_device = tiers ? tiers : group_share;
  const uint64_t weights = resident_weight_bytes(host, on_device);
  if (Status s =
          check_device_fit(weights + reserve_bytes + kKernelScratch, memory->free_bytes,
                           "weights " + gib(weights) + " + KV and step workspace " +
                               gib(reserve_bytes) + " + kernel scratch " + gib(kKernelScratch));
      !s)
    return s;
  Result<std::unique_ptr<Backend>> be = device::make_backend(*spec, threads);
  if (!be) return be.status();
  out.backend = std::move(*be);
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
