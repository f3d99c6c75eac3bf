#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

#include "kernels/cuda/dequantize_cuda.h"

namespace v4::kernels::cuda {
namespace {

struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 34 bytes (spec §6)");

__device__ float half_bits_to_float(uint16_t bits) {
  return __half2float(__ushort_as_half(bits));
}

// One thread per value: y = d · q (the product is exact-rounded fp32, as on the CPU).
__global__ void dequantize_q8_0_kernel(const BlockQ8_0* blocks, float* dst, int64_t n) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= n) return;
  const BlockQ8_0& b = blocks[i / 32];
  dst[i] = half_bits_to_float(b.d) * static_cast<float>(b.qs[i % 32]);
}

__global__ void dequantize_f16_kernel(const uint16_t* src, float* dst, int64_t n) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i < n) dst[i] = half_bits_to_float(src[i]);
}

Status check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::ok();
  return Status::error(std::string(what) + ": " + cudaGetErrorString(err));
}

}  // namespace

Status dequantize_device(GgmlType type, const void* src, float* dst, int64_t n) {
  constexpr int kThreads = 256;
  const unsigned grid = static_cast<unsigned>((n + kThreads - 1) / kThreads);
  if (n <= 0) return Status::ok();
  if (type == GgmlType::Q8_0) {
    if (n % 32 != 0) return Status::error("Q8_0 row length must be a multiple of 32");
    dequantize_q8_0_kernel<<<grid, kThreads>>>(static_cast<const BlockQ8_0*>(src), dst, n);
  } else if (type == GgmlType::F16) {
    dequantize_f16_kernel<<<grid, kThreads>>>(static_cast<const uint16_t*>(src), dst, n);
  } else {
    return Status::error("dequantize_device: unsupported type " +
                         std::string(ggml_type_name(type)));
  }
  if (Status s = check(cudaGetLastError(), "kernel launch"); !s) return s;
  return check(cudaDeviceSynchronize(), "dequantize");
}

}  // namespace v4::kernels::cuda
