// The weights of a V4 model resident in a backend's memory (the CUDA backend's GPU): one
// allocation holds every matrix, in the GGUF block layout the file has (the device kernels read
// blocks per warp lane, so consecutive lanes read consecutive blocks), except that a device
// rewrites each Q8_0 row in place as its quants, then its scales (Backend::split_q8_0_rows: a
// 34-byte block allows only 16-bit loads, the split row 16-byte loads; the same values and
// size), and the small vectors widened at bind time. The copy of V4Weights it holds points there;
// the host weights are left unchanged.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "model/backend/backend.h"
#include "model/v4/expert_tiers.h"
#include "model/v4/v4_weights.h"

namespace v4 {

struct UploadProgress {
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  double seconds = 0;
};

// Bytes `weights` take once resident (matrices, small vectors, alignment); with `tiers`, the
// routed experts of each layer only its hot set.
uint64_t resident_weight_bytes(const V4Weights& weights, const ExpertTiers* tiers = nullptr);

// An error naming what is missing when `needed` bytes do not fit in `free_bytes`; `what` lists
// the parts, e.g. "weights 81.2 GiB + KV 4.0 GiB + workspace 1.0 GiB".
Status check_device_fit(uint64_t needed, uint64_t free_bytes, const std::string& what);

class DeviceWeights {
 public:
  // How many matrices of a stack the host memory behind it holds; the device copy repeats them
  // in order up to n_mats (full-scale benchmarks from a smaller template). Unset: all of them.
  using HostMats = std::function<int64_t(const WeightMatrix&)>;

  // Copies every tensor of `host` into one buffer of `backend`, calling `progress` after each.
  // With `tiers`, a main layer's routed-expert stacks hold only its hot experts, in ascending id
  // order (ExpertTiers::slots); the cold ones stay in host memory (TieredExpertDispatcher).
  static Result<std::unique_ptr<DeviceWeights>> upload(
      const V4Weights& host, Backend& backend,
      const std::function<void(const UploadProgress&)>& progress = {},
      const HostMats& host_mats = {}, const ExpertTiers* tiers = nullptr);

  const V4Weights& weights() const { return weights_; }
  uint64_t bytes() const { return bytes_; }

 private:
  V4Weights weights_;
  std::unique_ptr<DeviceBuffer> buffer_;
  uint64_t bytes_ = 0;
};

}  // namespace v4
