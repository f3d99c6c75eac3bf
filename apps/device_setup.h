// --device for the commands that run the forward: the backend, and on a GPU the weights copied
// into its memory after a check that they fit (one line saying how much is missing otherwise),
// with a progress bar while they upload.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "model/backend/backend.h"
#include "model/v4/device_weights.h"
#include "model/v4/expert_dispatcher.h"
#include "model/v4/expert_tiers.h"
#include "model/v4/step_shapes.h"
#include "model/v4/v4_weights.h"

namespace v4::apps {

inline constexpr const char* kDeviceHelp =
    "where the forward runs: cpu, cuda or cuda:N (emulated: the GPU kernels on the host, slow; "
    "emulated:G: as on a device of G GiB)";

struct PreparedDevice {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<DeviceWeights> resident;  // null on the CPU: the mapped file is read in place
  const V4Weights* weights = nullptr;       // what the forward reads
  double upload_seconds = 0;
  // The fit check's sum (weights on the device + the reserve + the expert dispatch buffers) and
  // the free memory it was checked against (0 where unbounded); 0 and 0 on the CPU.
  uint64_t planned_bytes = 0, free_bytes = 0;
  // With expert tiers: the dispatcher that runs the cold experts on the CPU (it owns that
  // backend); the forward and the engines take it as their ExpertDispatcher.
  std::unique_ptr<ExpertDispatcher> experts;
};

// Where upload progress goes: the log (servers), or stderr (commands whose stdout is data).
enum class UploadProgressTo { kLog, kStderr };

// Device memory a forward needs beside its weights; the fit check counts it before they upload.
struct DeviceReserve {
  uint64_t kv_bytes = 0;         // the KV pages
  uint64_t workspace_bytes = 0;  // the forward's step workspace (ForwardWorkspace::bytes_for)
  uint64_t scratch_bytes = 0;    // the kernels' scratch for `scratch` (device/scratch_bound.h)
  ScratchShapes scratch;         // the steps the backend's scratch is reserved for
  // The routed experts' dispatcher reserves its buffers for steps of up to `dispatch_tokens`
  // tokens (ExpertDispatcher::reserve); on a rank of a group of `ranks`, its peers' rows too.
  // prepare_device counts them, as it knows whether the experts are tiered.
  int64_t dispatch_tokens = 0;
  uint32_t ranks = 1;
  uint64_t total() const { return kv_bytes + workspace_bytes + scratch_bytes; }
};

// Steps of up to `tokens` tokens, decode steps of up to `decode_rows` sequences (recorded, with a
// scratch of their own), at positions below `context`, no KV pages (a command that keeps its
// sequences in ContiguousKvStates, F32).
DeviceReserve step_reserve(const V4Weights& weights, int64_t tokens, int64_t decode_rows,
                           int64_t context);

// An engine: its KV pages, its largest step (max_batch_tokens), and the scratch its recorded
// decode steps keep apart (up to max_seqs rows, padded). On a rank of a group of `ranks`, the
// rank's experts may take every rank's routed rows.
DeviceReserve engine_reserve(const V4Weights& weights, uint64_t kv_memory_bytes, KvStorage storage,
                             uint32_t max_batch_tokens, uint32_t max_seqs, uint32_t max_context,
                             uint32_t ranks = 1);

// The share of a device's free memory the KV budget fills when --kv-memory is not given, after
// the weights and the step memory: the rest is for what the plan does not count (the CUDA
// graphs' instantiations, NCCL's own buffers, the allocator's fragmentation). vLLM's default
// device memory utilization is the same 0.9.
inline constexpr double kDeviceMemoryUtilization = 0.9;

// The KV budget a device leaves when --kv-memory is not given: kDeviceMemoryUtilization of its
// free memory, less the weights that go there and the rest of `reserve` (its kv_bytes ignored).
// 0 where the forward runs in host memory (the CPU; "emulated" without a size): the caller keeps
// its host default. An error when nothing is left.
Result<uint64_t> device_kv_budget(const std::string& device, const V4Weights& host,
                                  const DeviceReserve& reserve, const ExpertTiers* tiers = nullptr,
                                  const ExpertTiers* group_share = nullptr);

// The most of `host`'s first layers, at least `min_layers`, whose weights and step memory
// (`reserve_for` of the cut model) fit in kDeviceMemoryUtilization of the device's free memory,
// as the KV default leaves the rest; every layer where the device's memory is not bounded. An
// error naming the shortfall when not even `min_layers` fit. For measurements of a model larger
// than the device (bench --synthetic --layers fit): the per-layer figures hold at any depth.
Result<uint32_t> layers_that_fit(const std::string& device, const V4Weights& host,
                                 uint32_t min_layers,
                                 const std::function<DeviceReserve(const V4Weights&)>& reserve_for);

// `reserve`: device memory the caller needs beside the weights (the backend's scratch is reserved
// for its steps before the weights upload);
// `host_mats`: see DeviceWeights::upload; `tiers`: only each layer's hot experts go to the
// device, the cold ones run on the CPU (a device backend only: on the CPU every expert is in
// host memory already); `group_share`: a worker group rank's experts, the only ones that go to
// the device (the other ranks run the rest; held_experts() in worker/ep).
Result<PreparedDevice> prepare_device(const std::string& device, unsigned threads,
                                      const V4Weights& host, const DeviceReserve& reserve,
                                      UploadProgressTo progress = UploadProgressTo::kStderr,
                                      const DeviceWeights::HostMats& host_mats = {},
                                      const ExpertTiers* tiers = nullptr,
                                      const ExpertTiers* group_share = nullptr);

}  // namespace v4::apps
