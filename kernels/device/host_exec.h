// The host executor of the device ops (model/backend/device): the same index spaces a GPU runs,
// visited one index at a time on the calling thread. It is what lets the kernels' logic run, and
// be tested against the CPU backend, on a machine without a GPU; CudaExec (kernels/cuda) is the
// other executor, with the same interface and the same arithmetic per index.
//
// The interface both executors provide:
//   malloc / free          memory on the executor's device (nullptr when it cannot be had)
//   copy_in / copy_out     host → device and device → host (copy_out waits for the work before)
//   copy / zero            device → device, and zero fill, ordered with the kernels
//   sync                   waits for all work; reports the first asynchronous error (a team
//                          over kernels/device/team_limits.h's limits is one, and does not run)
//   for_each(n, f)         f(i) for every i < n, independently and in no particular order
//   warp_sums<N, T>(n, p, s)  for every i < n: 32 lanes each add their partials
//                          p(i, lane, acc[N]) (T: float by default, or double),
//                          the lanes are summed by the butterfly of warp_butterfly_sum (lane l
//                          adds lane l^16, then l^8, …, l^1), and s(i, sum[N]) stores lane 0's
//   for_each_team(n, size, shared_bytes, f)
//                          f(i, team) for every i < n: a team of `size` threads (a GPU block)
//                          with `shared_bytes` of memory of its own (team.shared<T>()). The body
//                          runs its per-thread work as phases, team.threads(g): g(thread) for
//                          every thread, then a barrier, so a phase reads what the one before
//                          wrote. Outside the phases the body must do the same for every thread
//                          (a GPU runs it on each; the host once), and per-thread values that
//                          outlive a phase live in shared memory.
//   begin_capture / end_capture / replay
//                          a CUDA graph's semantics: between the first two, launches, copies
//                          and fills are recorded, not run; replay runs the recording again
//                          with the arguments it had. Anything else in between (an allocation,
//                          a free, a host copy, a sync) breaks the capture: it still takes effect
//                          (frees wait for the end), and end_capture returns an error, no graph.
//
// A GPU runs a launch's indices, and a phase's threads, in no order at all, and at once. The host
// visits them in a fixed order, which HostOrder chooses: a kernel whose bits differ between the
// two orders depends on one, which on a GPU is a race (a thread reading what another writes in the
// same phase, a team reading another team's output of the same launch). Running the same work in
// both orders and comparing the bits finds such a race on any machine.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "kernels/device/team_limits.h"

namespace v4::kernels {

inline constexpr int kWarpLanes = 32;

enum class HostOrder { kAscending, kDescending };

// V4_HOST_EXEC_ORDER=descending: any program's host executors visit in descending order.
inline HostOrder host_order_from_environment() {
  const char* order = std::getenv("V4_HOST_EXEC_ORDER");
  return order && std::string(order) == "descending" ? HostOrder::kDescending
                                                     : HostOrder::kAscending;
}

// f(i) for i = 0 … n − 1 in `order`. One loop, so that each kernel's body is compiled once.
template <class F>
void visit_in_order(int64_t n, HostOrder order, const F& f) {
  const bool descending = order == HostOrder::kDescending;
  for (int64_t k = 0; k < n; ++k) f(descending ? n - 1 - k : k);
}

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

// A team on the host: its threads' phases run one thread after the other, which is a barrier
// between phases by construction.
class HostTeam {
 public:
  HostTeam(int size, void* shared, HostOrder order = HostOrder::kAscending)
      : size_(size), shared_(shared), order_(order) {}
  int size() const { return size_; }
  template <class T>
  T* shared() const {
    return static_cast<T*>(shared_);
  }
  template <class G>
  void threads(const G& g) const {
    visit_in_order(size_, order_, [&](int64_t thread) { g(static_cast<int>(thread)); });
  }

 private:
  int size_;
  void* shared_;
  HostOrder order_;
};

// A recorded step: the launches, copies and fills of a capture, in order.
struct HostGraph {
  std::vector<std::function<void()>> work;
};

class HostExec {
 public:
  static constexpr bool kIsHost = true;
  using Team = HostTeam;
  using Graph = HostGraph;

  explicit HostExec(HostOrder order = host_order_from_environment()) : order_(order) {}

  void* malloc(size_t bytes) {
    broken("an allocation");
    return std::malloc(bytes ? bytes : 1);
  }
  void free(void* p) {
    if (capture_) {
      broken("a free");
      deferred_frees_.push_back(p);
      return;
    }
    std::free(p);
  }
  Status copy_in(void* dst, const void* host, size_t bytes) {
    broken("a copy from the host");
    if (bytes) std::memcpy(dst, host, bytes);
    return Status::ok();
  }
  Status copy_out(void* host, const void* src, size_t bytes) {
    broken("a copy to the host");
    if (bytes) std::memcpy(host, src, bytes);
    return sync();
  }
  void copy(void* dst, const void* src, size_t bytes) {
    if (bytes) run([=] { std::memmove(dst, src, bytes); });
  }
  void zero(void* dst, size_t bytes) {
    if (bytes) run([=] { std::memset(dst, 0, bytes); });
  }
  Status sync() {
    broken("a sync");
    if (!error_.empty()) return Status::error("host executor: " + error_);
    return Status::ok();
  }

  void begin_capture() {
    capture_ = std::make_unique<HostGraph>();
    broken_by_.clear();
  }
  Result<HostGraph> end_capture() {
    std::unique_ptr<HostGraph> graph = std::move(capture_);
    for (void* p : deferred_frees_) std::free(p);
    deferred_frees_.clear();
    if (!graph) return Status::error("no capture to end");
    if (!broken_by_.empty()) return Status::error("the capture was broken by " + broken_by_);
    return std::move(*graph);
  }
  Status replay(const HostGraph& graph) {
    if (capture_) return Status::error("a replay inside a capture");
    for (const std::function<void()>& work : graph.work) work();
    return Status::ok();
  }

  // Kernels launched so far (what a device would launch; the profile reports it per op).
  uint64_t launches() const { return launches_; }

  template <class F>
  void for_each(int64_t n, const F& f) {
    if (n <= 0) return;
    ++launches_;
    run([=, order = order_] { visit_in_order(n, order, f); });
  }

  template <int N, class T = float, class P, class S>
  void warp_sums(int64_t n, const P& partial, const S& store) {
    if (n <= 0) return;
    ++launches_;
    run([=, order = order_] {
      visit_in_order(n, order, [&](int64_t i) {
        T acc[kWarpLanes][N] = {};
        visit_in_order(kWarpLanes, order,
                       [&](int64_t lane) { partial(i, static_cast<int>(lane), acc[lane]); });
        warp_butterfly_sum<N, T>(acc);
        store(i, acc[0]);
      });
    });
  }

  template <class F>
  void for_each_team(int64_t n, int size, size_t shared_bytes, const F& f) {
    if (n <= 0) return;
    // Not run (nor counted), as a GPU would not run it; the first such launch is what sync()
    // reports.
    if (!team_fits(size, shared_bytes)) {
      if (error_.empty()) {
        error_ = "a team of " + std::to_string(size) + " threads and " +
                 std::to_string(shared_bytes) + " bytes of shared memory is over the limits (" +
                 std::to_string(kMaxTeamThreads) + ", " + std::to_string(kMaxTeamSharedBytes) + ")";
      }
      return;
    }
    ++launches_;
    run([=, order = order_] {
      // Zeroed once, like nothing a kernel may rely on: every body writes before it reads.
      std::vector<double> shared((shared_bytes + sizeof(double) - 1) / sizeof(double) + 1);
      visit_in_order(n, order, [&](int64_t i) { f(i, HostTeam(size, shared.data(), order)); });
    });
  }

 private:
  // Runs `work` now, or records it while capturing (a copy: the kernels' lambdas hold their
  // arguments by value, as a GPU launch does).
  template <class W>
  void run(W&& work) {
    if (capture_) {
      capture_->work.emplace_back(std::forward<W>(work));
    } else {
      work();
    }
  }
  void broken(const char* what) {
    if (capture_ && broken_by_.empty()) broken_by_ = what;
  }

  HostOrder order_;
  std::string error_;  // the first launch refused
  uint64_t launches_ = 0;
  std::unique_ptr<HostGraph> capture_;
  std::string broken_by_;
  std::vector<void*> deferred_frees_;
};

}  // namespace v4::kernels
