#include "worker/ep/exchange_thread.h"

#include <chrono>

namespace v4 {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

ExchangeThread::ExchangeThread(bool overlap) : overlap_(overlap) {
  if (overlap_) thread_ = std::thread([this] { loop(); });
}

ExchangeThread::~ExchangeThread() {
  if (!overlap_) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();  // a job in flight ends within the communicator's timeout
}

void ExchangeThread::start(FunctionRef<Status()> job) {
  if (!overlap_) {
    const auto start = Clock::now();
    status_ = job();
    job_seconds_ = seconds_since(start);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = job;
    pending_ = true;
    finished_ = false;
  }
  wake_.notify_one();
}

Status ExchangeThread::wait(double* exposed) {
  if (!overlap_) {
    if (exposed) *exposed = job_seconds_;  // start() ran it: all of it was in the caller's way
    return status_;
  }
  const auto start = Clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [this] { return finished_; });
  if (exposed) *exposed = seconds_since(start);
  return status_;
}

void ExchangeThread::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return pending_ || stop_; });
    if (stop_) return;
    pending_ = false;
    const FunctionRef<Status()> job = *job_;
    lock.unlock();
    const auto start = Clock::now();
    Status status = job();
    const double seconds = seconds_since(start);
    lock.lock();
    status_ = std::move(status);
    job_seconds_ = seconds;
    finished_ = true;
    done_.notify_one();
  }
}

}  // namespace v4
