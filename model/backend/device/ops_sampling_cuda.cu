// The sampling op on the CUDA executor (CudaBackend).
#include "kernels/cuda/cuda_exec.cuh"
#include "model/backend/device/device_ops_sampling.h"

namespace v4::device {
using kernels::CudaExec;
V4_DEVICE_OPS_SAMPLING(CudaExec)
}  // namespace v4::device
