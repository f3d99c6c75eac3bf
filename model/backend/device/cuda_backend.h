// The CUDA backend: every Backend op on one GPU (device_ops.h over kernels::CudaExec), memory
// from cudaMalloc, one stream. Declared without CUDA headers so that host code can create it.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "core/status.h"
#include "model/backend/backend.h"
#include "model/backend/device/device_scratch.h"

namespace v4::device {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  size_t total_bytes = 0;
  size_t free_bytes = 0;
  int sm_count = 0;
  int compute_major = 0, compute_minor = 0;
};

// What device `index` is and how much memory it has free now; an error when there is none.
Result<CudaDeviceInfo> cuda_device_info(int index);

// A backend on device `index`; an error (never a crash) when no usable GPU is there.
Result<std::unique_ptr<Backend>> make_cuda_backend(int index, const DeviceOpOptions& ops = {});

}  // namespace v4::device
