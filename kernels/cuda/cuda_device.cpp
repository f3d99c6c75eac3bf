#include "kernels/cuda/cuda_device.h"

#include <cuda_runtime_api.h>

namespace v4::kernels::cuda {

CudaAvailability cuda_availability() {
  CudaAvailability out;
  int count = 0;
  // Without a driver the runtime answers cudaErrorInsufficientDriver, not cudaErrorNoDevice.
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    out.reason = std::string("CUDA runtime: ") + cudaGetErrorString(err);
    return out;
  }
  if (count == 0) {
    out.reason = "no CUDA device";
    return out;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    out.reason = "cannot query device 0";
    return out;
  }
  out.available = true;
  out.device_count = count;
  out.reason = prop.name;
  return out;
}

}  // namespace v4::kernels::cuda
