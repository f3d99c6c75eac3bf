// ExchangeThread: with overlap a job runs on its own thread while the caller works (the job
// below can only finish once the caller's work has run), its status comes back, and jobs run one
// after another; without overlap the job runs inline in start(). Bounded: a job that never sees
// the caller's flag gives up after two seconds and fails the test.
#include "worker/ep/exchange_thread.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

namespace v4 {
namespace {

// A job that waits (up to two seconds) for `flag`, then reports which thread ran it.
std::function<Status()> wait_for(std::atomic<bool>& flag, std::thread::id& ran_on) {
  return [&flag, &ran_on] {
    ran_on = std::this_thread::get_id();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!flag.load() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return flag.load() ? Status::ok() : Status::error("the caller's work never ran");
  };
}

TEST(ExchangeThread, RunsTheJobWhileTheCallerWorks) {
  ExchangeThread exchanges(true);
  for (int round = 0; round < 3; ++round) {
    std::atomic<bool> caller_worked{false};
    std::thread::id ran_on;
    const std::function<Status()> job = wait_for(caller_worked, ran_on);  // lives past wait()
    exchanges.start(job);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    caller_worked = true;  // the caller's own work, after start() returned
    double exposed = -1;
    const Status s = exchanges.wait(&exposed);
    EXPECT_TRUE(s) << s.message();
    EXPECT_NE(ran_on, std::this_thread::get_id());
    EXPECT_GE(exposed, 0.0);
    EXPECT_GE(exchanges.last_job_seconds(), 0.015);  // it ran through the caller's 20 ms
  }
}

TEST(ExchangeThread, AFailedJobsStatusComesBack) {
  ExchangeThread exchanges(true);
  const auto fail = [] { return Status::error("peer lost"); };
  exchanges.start(fail);
  const Status s = exchanges.wait();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.message(), "peer lost");
  const auto succeed = [] { return Status::ok(); };
  exchanges.start(succeed);
  EXPECT_TRUE(exchanges.wait());
}

TEST(ExchangeThread, WithoutOverlapTheJobRunsInlineAndIsAllExposed) {
  ExchangeThread exchanges(false);
  std::thread::id ran_on;
  const auto job = [&ran_on] {
    ran_on = std::this_thread::get_id();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return Status::error("inline");
  };
  exchanges.start(job);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  double exposed = 0;
  EXPECT_FALSE(exchanges.wait(&exposed));
  EXPECT_GE(exposed, 0.009);
  EXPECT_EQ(exposed, exchanges.last_job_seconds());
}

}  // namespace
}  // namespace v4
