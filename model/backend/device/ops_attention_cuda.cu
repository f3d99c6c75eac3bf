// The attention ops on the CUDA executor (CudaBackend).
#include "kernels/cuda/cuda_exec.cuh"
#include "model/backend/device/device_ops_sparse_attention.h"

namespace v4::device {
using kernels::CudaExec;
V4_DEVICE_OPS_ATTENTION(CudaExec)
}  // namespace v4::device
