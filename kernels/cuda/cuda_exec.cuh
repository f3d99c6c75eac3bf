// The CUDA executor of the device ops (model/backend/device): the interface of HostExec
// (kernels/device/host_exec.h) on one stream of one GPU. for_each runs a thread per index,
// warp_sums a warp per index whose lanes are summed by __shfl_xor_sync in the butterfly order
// the host executor spells out, so both executors compute every output the same way. Kernels
// are launched asynchronously; the first error is kept and reported by sync() and copy_out().
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace v4::kernels {

template <class F>
__global__ void for_each_kernel(int64_t n, F f) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) f(i);
}

template <int N, class T, class P, class S>
__global__ void warp_sums_kernel(int64_t n, P partial, S store) {
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const int64_t warps = (int64_t{gridDim.x} * blockDim.x) / 32;
  for (int64_t i = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) / 32; i < n; i += warps) {
    T acc[N];
    for (int k = 0; k < N; ++k) acc[k] = T(0);
    partial(i, lane, acc);
    for (int offset = 16; offset > 0; offset /= 2) {
      for (int k = 0; k < N; ++k) acc[k] = acc[k] + __shfl_xor_sync(0xffffffffu, acc[k], offset);
    }
    if (lane == 0) store(i, acc);
  }
}

class CudaExec {
 public:
  static constexpr bool kIsHost = false;
  static constexpr int kThreads = 256;
  static constexpr int64_t kMaxBlocks = int64_t{1} << 20;

  explicit CudaExec(int device = 0) : device_(device) {}

  // Selects the device and creates the stream; an error when either fails.
  Status init() {
    if (Status s = check(cudaSetDevice(device_), "cudaSetDevice"); !s) return s;
    return check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  void destroy() {
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }
  int device() const { return device_; }
  // Kernels launched so far (the profile reports them per op).
  uint64_t launches() const { return launches_; }
  cudaStream_t stream() const { return stream_; }

  void* malloc(size_t bytes) {
    void* p = nullptr;
    if (cudaMalloc(&p, std::max<size_t>(bytes, 1)) != cudaSuccess) {
      cudaGetLastError();  // an allocation failure is not sticky: clear it
      return nullptr;
    }
    return p;
  }
  void free(void* p) {
    if (p) {
      cudaStreamSynchronize(stream_);
      cudaFree(p);
    }
  }
  Status copy_in(void* dst, const void* host, size_t bytes) {
    if (!bytes) return Status::ok();
    // Pageable host memory: the call returns once the bytes are staged, so `host` may be reused.
    return check(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream_), "copy_in");
  }
  Status copy_out(void* host, const void* src, size_t bytes) {
    if (Status s = record(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, stream_));
        !s && bytes)
      return s;
    return sync();
  }
  void copy(void* dst, const void* src, size_t bytes) {
    if (bytes) record(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void zero(void* dst, size_t bytes) {
    if (bytes) record(cudaMemsetAsync(dst, 0, bytes, stream_));
  }
  Status sync() {
    record(cudaStreamSynchronize(stream_));
    if (!error_.empty()) return Status::error("CUDA: " + error_);
    return Status::ok();
  }

  template <class F>
  void for_each(int64_t n, const F& f) {
    if (n <= 0) return;
    const int64_t blocks = std::min(kMaxBlocks, (n + kThreads - 1) / kThreads);
    ++launches_;
    for_each_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream_>>>(n, f);
    record(cudaGetLastError());
  }

  template <int N, class T = float, class P, class S>
  void warp_sums(int64_t n, const P& partial, const S& store) {
    if (n <= 0) return;
    constexpr int64_t kWarpsPerBlock = kThreads / 32;
    const int64_t blocks = std::min(kMaxBlocks, (n + kWarpsPerBlock - 1) / kWarpsPerBlock);
    ++launches_;
    warp_sums_kernel<N, T>
        <<<static_cast<unsigned>(blocks), kThreads, 0, stream_>>>(n, partial, store);
    record(cudaGetLastError());
  }

 private:
  static Status check(cudaError_t err, const char* what) {
    if (err == cudaSuccess) return Status::ok();
    return Status::error(std::string(what) + ": " + cudaGetErrorString(err));
  }
  // Keeps the first error of an asynchronous call; later calls report it.
  Status record(cudaError_t err) {
    if (err != cudaSuccess && error_.empty()) error_ = cudaGetErrorString(err);
    return check(err, "CUDA");
  }

  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  std::string error_;
  uint64_t launches_ = 0;
};

}  // namespace v4::kernels
