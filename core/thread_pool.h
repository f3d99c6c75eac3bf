// A fixed pool of worker threads for data-parallel loops. Work is split into contiguous index
// ranges that depend only on the item count and the pool size, and each index is processed by
// exactly one thread; callers keep results independent of the thread count by never reducing
// across ranges (every output element is computed by one task in a fixed order).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "core/function_ref.h"

namespace v4 {

class ThreadPool {
 public:
  // `threads` = 0 means one per hardware core. The calling thread takes part in every loop, so
  // a pool of n runs n-1 background threads.
  explicit ThreadPool(unsigned threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return n_threads_; }

  // Calls fn(begin, end) on disjoint ranges covering [0, n); returns when all are done. Not
  // reentrant: fn must not call parallel_for on the same pool.
  void parallel_for(int64_t n, FunctionRef<void(int64_t, int64_t)> fn);

 private:
  void worker_loop(unsigned index);
  void run_share(unsigned index);

  unsigned n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  const FunctionRef<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_items_ = 0;
  // Written under mutex_ (so sleepers miss no wake-up), read without it while spinning.
  std::atomic<uint64_t> generation_{0};
  std::atomic<unsigned> pending_{0};
  bool stopping_ = false;
};

}  // namespace v4
