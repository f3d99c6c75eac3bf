// The host executor of the device ops (model/backend/device): the same index spaces a GPU runs,
// visited one index at a time on the calling thread. It is what lets the kernels' logic run, and
// be tested against the CPU backend, on a machine without a GPU; CudaExec (kernels/cuda) is the
// other executor, with the same interface and the same arithmetic per index.
//
// The interface both executors provide:
//   malloc / free          memory on the executor's device (nullptr when it cannot be had)
//   copy_in / copy_out     host → device and device → host (copy_out waits for the work before)
//   copy / zero            device → device, and zero fill, ordered with the kernels
//   sync                   waits for all work; reports the first asynchronous error
//   for_each(n, f)         f(i) for every i < n, independently and in no particular order
//   warp_sums<N, T>(n, p, s)  for every i < n: 32 lanes each add their partials
//                          p(i, lane, acc[N]) (T: float by default, or double),
//                          the lanes are summed by the butterfly of warp_butterfly_sum (lane l
//                          adds lane l^16, then l^8, …, l^1), and s(i, sum[N]) stores lane 0's
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/status.h"

namespace v4::kernels {

inline constexpr int kWarpLanes = 32;

// The lane reduction both executors perform, spelled out for the host: after the step with
// offset o, lane l holds v[l] + v[l ^ o] (own value first, as __shfl_xor_sync gives it).
template <int N, class T>
void warp_butterfly_sum(T (&v)[kWarpLanes][N]) {
  for (int offset = kWarpLanes / 2; offset > 0; offset /= 2) {
    T next[kWarpLanes][N];
    for (int l = 0; l < kWarpLanes; ++l) {
      for (int k = 0; k < N; ++k) next[l][k] = v[l][k] + v[l ^ offset][k];
    }
    std::memcpy(v, next, sizeof(next));
  }
}

class HostExec {
 public:
  static constexpr bool kIsHost = true;

  void* malloc(size_t bytes) { return std::malloc(bytes ? bytes : 1); }
  void free(void* p) { std::free(p); }
  Status copy_in(void* dst, const void* host, size_t bytes) {
    if (bytes) std::memcpy(dst, host, bytes);
    return Status::ok();
  }
  Status copy_out(void* host, const void* src, size_t bytes) {
    if (bytes) std::memcpy(host, src, bytes);
    return Status::ok();
  }
  void copy(void* dst, const void* src, size_t bytes) {
    if (bytes) std::memmove(dst, src, bytes);
  }
  void zero(void* dst, size_t bytes) {
    if (bytes) std::memset(dst, 0, bytes);
  }
  Status sync() { return Status::ok(); }

  // Kernels launched so far (what a device would launch; the profile reports it per op).
  uint64_t launches() const { return launches_; }

  template <class F>
  void for_each(int64_t n, const F& f) {
    launches_ += n > 0;
    for (int64_t i = 0; i < n; ++i) f(i);
  }

  template <int N, class T = float, class P, class S>
  void warp_sums(int64_t n, const P& partial, const S& store) {
    launches_ += n > 0;
    for (int64_t i = 0; i < n; ++i) {
      T acc[kWarpLanes][N] = {};
      for (int lane = 0; lane < kWarpLanes; ++lane) partial(i, lane, acc[lane]);
      warp_butterfly_sum<N, T>(acc);
      store(i, acc[0]);
    }
  }

 private:
  uint64_t launches_ = 0;
};

}  // namespace v4::kernels
