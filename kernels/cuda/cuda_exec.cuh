// The CUDA executor of the device ops (model/backend/device): the interface of HostExec
// (kernels/device/host_exec.h) on one stream of one GPU. for_each runs a thread per index,
// warp_sums a warp per index whose lanes are summed by __shfl_xor_sync in the butterfly order
// the host executor spells out, so both executors compute every output the same way. Kernels
// are launched asynchronously; the first error is kept and reported by sync() and copy_out().
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/status.h"
#include "kernels/device/team_limits.h"

namespace v4::kernels {

// Programmatic dependent launch (compute capability 9.0 on; CudaExec::init decides): a kernel may
// be scheduled while the one before it in the stream drains, so the launch latency and the ramp
// of each small kernel of a decode step hide under its predecessor's tail. Every kernel of the
// executor first waits until the kernel before it has finished and its writes are visible, so
// the stream's order holds for every memory access; only then does it let the next kernel be
// scheduled (at most two kernels' blocks are resident at once). Without the launch attribute, or
// compiled for an older architecture, both are no-ops.
__device__ __forceinline__ void after_the_kernel_before() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Compiled like every kernel, to ask which architecture's code this device runs (a template: one
// definition across the translation units that include this header).
template <int = 0>
__global__ void architecture_probe_kernel() {}

template <class F>
__global__ void for_each_kernel(int64_t n, F f) {
  after_the_kernel_before();
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) f(i);
}

template <int N, class T, class P, class S>
__global__ void warp_sums_kernel(int64_t n, P partial, S store) {
  after_the_kernel_before();
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

// A team on the GPU: one block, thread t of the team is threadIdx.x. The methods are host and
// device functions so that the executor's __host__ __device__ lambdas compile for both sides;
// only the device side ever runs.
class CudaTeam {
 public:
  __host__ __device__ CudaTeam(int size, void* shared) : size_(size), shared_(shared) {}
  __host__ __device__ int size() const { return size_; }
  template <class T>
  __host__ __device__ T* shared() const {
    return static_cast<T*>(shared_);
  }
  template <class G>
  __host__ __device__ void threads(const G& g) const {
#if defined(__CUDA_ARCH__)
    if (static_cast<int>(threadIdx.x) < size_) g(static_cast<int>(threadIdx.x));
    __syncthreads();
#else
    (void)g;
#endif
  }

 private:
  int size_;
  void* shared_;
};

// Compiled for blocks of up to kMaxTeamThreads: registers are capped at what such a block may
// have, so a launch never fails for want of them (a kernel that needs more spills instead).
template <class F>
__global__ void __launch_bounds__(kMaxTeamThreads) team_kernel(int64_t n, int size, F f) {
  extern __shared__ double team_shared[];  // double: 8-byte aligned for any element type used
  after_the_kernel_before();
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    f(i, CudaTeam(size, team_shared));
    __syncthreads();  // the next index's team reuses the shared memory
  }
}

// An instantiated graph; destroying it while a launch of it runs is safe (CUDA frees it after).
class CudaGraph {
 public:
  explicit CudaGraph(cudaGraphExec_t exec = nullptr) : exec_(exec) {}
  CudaGraph(CudaGraph&& o) noexcept : exec_(std::exchange(o.exec_, nullptr)) {}
  CudaGraph& operator=(CudaGraph&& o) noexcept {
    std::swap(exec_, o.exec_);
    return *this;
  }
  ~CudaGraph() {
    if (exec_) cudaGraphExecDestroy(exec_);
  }
  cudaGraphExec_t get() const { return exec_; }

 private:
  cudaGraphExec_t exec_;
};

class CudaExec {
 public:
  static constexpr bool kIsHost = false;
  using Team = CudaTeam;
  using Graph = CudaGraph;
  static constexpr int kThreads = 256;
  static constexpr int64_t kMaxBlocks = int64_t{1} << 20;

  explicit CudaExec(int device = 0) : device_(device) {}

  // Selects the device and creates the stream; an error when either fails. Kernels are launched
  // with programmatic dependent launch (after_the_kernel_before) where the code this device runs
  // was compiled for compute capability 9.0 or later, unless V4_DEVICE_PDL=0 (a measuring aid).
  Status init() {
    if (Status s = check(cudaSetDevice(device_), "cudaSetDevice"); !s) return s;
    cudaFuncAttributes probe{};
    const char* pdl = std::getenv("V4_DEVICE_PDL");
    programmatic_ = cudaFuncGetAttributes(&probe, architecture_probe_kernel<>) == cudaSuccess &&
                    probe.binaryVersion >= 90 && !(pdl && std::string(pdl) == "0");
    cudaGetLastError();
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
    broken("an allocation");
    void* p = nullptr;
    if (cudaMalloc(&p, std::max<size_t>(bytes, 1)) != cudaSuccess) {
      cudaGetLastError();  // an allocation failure is not sticky: clear it
      return nullptr;
    }
    return p;
  }
  void free(void* p) {
    if (!p) return;
    if (capturing_) {
      broken("a free");
      deferred_frees_.push_back(p);
      return;
    }
    cudaStreamSynchronize(stream_);
    cudaFree(p);
  }
  Status copy_in(void* dst, const void* host, size_t bytes) {
    if (!bytes) return Status::ok();
    if (capturing_) {
      // A pageable copy cannot join a graph: done now, outside the stream, and the capture fails.
      broken("a copy from the host");
      return check(cudaMemcpy(dst, host, bytes, cudaMemcpyHostToDevice), "copy_in");
    }
    // Pageable host memory: the call returns once the bytes are staged, so `host` may be reused.
    return check(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream_), "copy_in");
  }
  Status copy_out(void* host, const void* src, size_t bytes) {
    if (capturing_) {
      broken("a copy to the host");
      return check(cudaMemcpy(host, src, bytes, cudaMemcpyDeviceToHost), "copy_out");
    }
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
    if (capturing_) {
      broken("a sync");
      return Status::ok();
    }
    record(cudaStreamSynchronize(stream_));
    if (!error_.empty()) return Status::error("CUDA: " + error_);
    return Status::ok();
  }

  // Relaxed mode: an allocation inside the capture is let through (and breaks it) instead of
  // invalidating the stream's capture with an error that would outlive it.
  void begin_capture() {
    broken_by_.clear();
    if (Status s = check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed),
                         "cudaStreamBeginCapture");
        !s) {
      broken_by_ = s.message();
      return;
    }
    capturing_ = true;
  }
  Result<CudaGraph> end_capture() {
    if (!capturing_ && broken_by_.empty()) return Status::error("no capture to end");
    cudaGraph_t graph = nullptr;
    cudaError_t err = capturing_ ? cudaStreamEndCapture(stream_, &graph) : cudaSuccess;
    capturing_ = false;
    for (void* p : deferred_frees_) cudaFree(p);
    deferred_frees_.clear();
    if (err != cudaSuccess || !graph || !broken_by_.empty()) {
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();  // an invalidated capture's error is not the stream's
      return Status::error(
          "the capture was broken by " +
          (broken_by_.empty() ? std::string(cudaGetErrorString(err)) : broken_by_));
    }
    cudaGraphExec_t exec = nullptr;
    err = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (err != cudaSuccess) {
      cudaGetLastError();
      return Status::error(std::string("cudaGraphInstantiate: ") + cudaGetErrorString(err));
    }
    return CudaGraph(exec);
  }
  Status replay(const CudaGraph& graph) {
    if (capturing_) return Status::error("a replay inside a capture");
    return record(cudaGraphLaunch(graph.get(), stream_));
  }

  template <class F>
  void for_each(int64_t n, const F& f) {
    if (n <= 0) return;
    const int64_t blocks = std::min(kMaxBlocks, (n + kThreads - 1) / kThreads);
    launch(for_each_kernel<F>, blocks, kThreads, 0, n, f);
  }

  template <int N, class T = float, class P, class S>
  void warp_sums(int64_t n, const P& partial, const S& store) {
    if (n <= 0) return;
    constexpr int64_t kWarpsPerBlock = kThreads / 32;
    const int64_t blocks = std::min(kMaxBlocks, (n + kWarpsPerBlock - 1) / kWarpsPerBlock);
    launch(warp_sums_kernel<N, T, P, S>, blocks, kThreads, 0, n, partial, store);
  }

  // A block of `size` threads (rounded up to whole warps) per team, within team_limits.h's.
  template <class F>
  void for_each_team(int64_t n, int size, size_t shared_bytes, const F& f) {
    if (n <= 0) return;
    if (!team_fits(size, shared_bytes)) {
      record(cudaErrorInvalidConfiguration);
      return;
    }
    const int64_t blocks = std::min(kMaxBlocks, n);
    const unsigned threads = static_cast<unsigned>((size + 31) / 32 * 32);
    launch(team_kernel<F>, blocks, threads, shared_bytes, n, size, f);
  }

 private:
  // kernel<<<blocks, threads, shared_bytes, stream>>>(args...), with the programmatic attribute
  // when init chose it.
  template <class... Params, class... Args>
  void launch(void (*kernel)(Params...), int64_t blocks, unsigned threads, size_t shared_bytes,
              const Args&... args) {
    ++launches_;
    cudaLaunchConfig_t config = {};
    config.gridDim = dim3(static_cast<unsigned>(blocks));
    config.blockDim = dim3(threads);
    config.dynamicSmemBytes = shared_bytes;
    config.stream = stream_;
    cudaLaunchAttribute attribute[1] = {};
    if (programmatic_) {
      attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attribute[0].val.programmaticStreamSerializationAllowed = 1;
      config.attrs = attribute;
      config.numAttrs = 1;
    }
    record(cudaLaunchKernelEx(&config, kernel, args...));
  }
  static Status check(cudaError_t err, const char* what) {
    if (err == cudaSuccess) return Status::ok();
    return Status::error(std::string(what) + ": " + cudaGetErrorString(err));
  }
  // Keeps the first error of an asynchronous call; later calls report it.
  Status record(cudaError_t err) {
    if (err != cudaSuccess && error_.empty()) error_ = cudaGetErrorString(err);
    return check(err, "CUDA");
  }
  void broken(const char* what) {
    if (capturing_ && broken_by_.empty()) broken_by_ = what;
  }

  int device_ = 0;
  bool programmatic_ = false;
  bool capturing_ = false;
  std::string broken_by_;
  std::vector<void*> deferred_frees_;
  cudaStream_t stream_ = nullptr;
  std::string error_;
  uint64_t launches_ = 0;
};

}  // namespace v4::kernels
