// CUDA device discovery. Any error from the runtime (no driver, no device, a driver too old) is
// reported as "no GPU" with the runtime's reason, so callers and tests can skip cleanly.
#pragma once

#include <string>

namespace v4::kernels::cuda {

struct CudaAvailability {
  bool available = false;
  int device_count = 0;
  std::string reason;  // why not available, or the first device's name
};

CudaAvailability cuda_availability();

}  // namespace v4::kernels::cuda
