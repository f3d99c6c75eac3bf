// --device for the commands that run the forward: the backend, and on a GPU the weights copied
// into its memory after a check that they fit (one line saying how much is missing otherwise),
// with a progress bar while they upload.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "model/backend/backend.h"
#include "model/v4/device_weights.h"
#include "model/v4/expert_dispatcher.h"
#include "model/v4/expert_tiers.h"
#include "model/v4/v4_weights.h"

namespace v4::apps {

inline constexpr const char* kDeviceHelp =
    "where the forward runs: cpu, cuda or cuda:N (emulated: the GPU kernels on the host, slow)";

struct PreparedDevice {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<DeviceWeights> resident;  // null on the CPU: the mapped file is read in place
  const V4Weights* weights = nullptr;       // what the forward reads
  double upload_seconds = 0;
  // With expert tiers: the dispatcher that runs the cold experts on the CPU (it owns that
  // backend); the forward and the engines take it as their ExpertDispatcher.
  std::unique_ptr<ExpertDispatcher> experts;
};

// Where upload progress goes: the log (servers), or stderr (commands whose stdout is data).
enum class UploadProgressTo { kLog, kStderr };

// Device memory an engine needs beside the weights and the kernels' scratch: its KV pages, and the
// forward's step workspace for its largest step (ForwardWorkspace::bytes_for).
uint64_t engine_reserve_bytes(const V4Config& config, uint64_t kv_memory_bytes,
                              uint32_t max_batch_tokens);

// `reserve_bytes`: device memory the caller needs beside the weights and the kernels' scratch
// (for an engine, engine_reserve_bytes);
// `host_mats`: see DeviceWeights::upload; `tiers`: only each layer's hot experts go to the
// device, the cold ones run on the CPU (a device backend only: on the CPU every expert is in
// host memory already); `group_share`: a worker group rank's experts, the only ones that go to
// the device (the other ranks run the rest; held_experts() in worker/ep).
Result<PreparedDevice> prepare_device(const std::string& device, unsigned threads,
                                      const V4Weights& host, uint64_t reserve_bytes,
                                      UploadProgressTo progress = UploadProgressTo::kStderr,
                                      const DeviceWeights::HostMats& host_mats = {},
                                      const ExpertTiers* tiers = nullptr,
                                      const ExpertTiers* group_share = nullptr);

}  // namespace v4::apps
