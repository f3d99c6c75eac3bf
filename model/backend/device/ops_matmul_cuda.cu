// The matmul ops on the CUDA executor (CudaBackend).
#include "kernels/cuda/cuda_exec.cuh"
#include "model/backend/device/device_ops_experts.h"
#include "model/backend/device/device_ops_matmul.h"
#include "model/backend/device/device_ops_q8_0_split.h"

namespace v4::device {
using kernels::CudaExec;
V4_DEVICE_OPS_MATMUL(CudaExec)
}  // namespace v4::device
