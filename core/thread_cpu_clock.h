// A std::chrono clock that reads the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID). The
// server's own overhead per request is charged with it: wall time would also count the time a
// handler sits preempted while the forward pass has every core busy.
#pragma once

#include <time.h>

#include <chrono>

namespace v4 {

struct ThreadCpuClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<ThreadCpuClock>;
  static constexpr bool is_steady = true;

  static time_point now() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
  }
};

}  // namespace v4
