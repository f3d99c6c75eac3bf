#include <cuda_runtime.h>

#include "kernels/cuda/cuda_exec.cuh"
#include "model/backend/device/cuda_backend.h"
#include "model/backend/device/device_backend.h"

namespace v4::device {
namespace {

class CudaBackend final : public DeviceBackend<kernels::CudaExec> {
 public:
  explicit CudaBackend(kernels::CudaExec exec) : DeviceBackend(std::move(exec)) {}
  ~CudaBackend() override {
    exec_.sync();
    // The scratch frees its slots through exec_ before the stream goes (member order).
  }
};

}  // namespace

Result<CudaDeviceInfo> cuda_device_info(int index) {
  int count = 0;
  if (cudaError_t err = cudaGetDeviceCount(&count); err != cudaSuccess) {
    cudaGetLastError();
    return Status::error(std::string("no usable GPU: CUDA runtime: ") + cudaGetErrorString(err));
  }
  if (index < 0 || index >= count) {
    return Status::error("no CUDA device " + std::to_string(index) + " (this machine has " +
                         std::to_string(count) + ")");
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
    return Status::error("cannot query CUDA device " + std::to_string(index));
  }
  CudaDeviceInfo info;
  info.index = index;
  info.name = prop.name;
  info.sm_count = prop.multiProcessorCount;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  if (cudaSetDevice(index) != cudaSuccess ||
      cudaMemGetInfo(&info.free_bytes, &info.total_bytes) != cudaSuccess) {
    return Status::error("cannot read the memory of CUDA device " + std::to_string(index));
  }
  return info;
}

Result<std::unique_ptr<Backend>> make_cuda_backend(int index, const DeviceOpOptions& ops) {
  Result<CudaDeviceInfo> info = cuda_device_info(index);
  if (!info) return info.status();
  kernels::CudaExec exec(index);
  if (Status s = exec.init(); !s) return s;
  auto backend = std::make_unique<CudaBackend>(std::move(exec));
  backend->set_op_options(ops);
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace v4::device
