// Runs one collective exchange at a time off the forward thread, so that an MoE layer's rows
// travel while the forward computes what does not depend on them (docs/expert-parallelism.md,
// "Communication–compute overlap"). The caller starts a job, does its own work, then waits for
// the job's status. Without overlap the job runs inline in start(), which gives the same results
// in the same order and is what the overlap is measured against.
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "core/function_ref.h"
#include "core/status.h"

namespace v4 {

class ExchangeThread {
 public:
  explicit ExchangeThread(bool overlap);
  ~ExchangeThread();
  ExchangeThread(const ExchangeThread&) = delete;
  ExchangeThread& operator=(const ExchangeThread&) = delete;

  bool overlap() const { return overlap_; }
  // Starts `job` (one at a time: a started job must be waited for before the next). The job is
  // referenced, not copied (no allocation per exchange): it must live until wait() returns.
  void start(FunctionRef<Status()> job);
  // Blocks until the started job has finished; its status. `exposed` gets the seconds the
  // caller was held up by the job (all of it without overlap; else the wait here): the
  // communication its own work did not hide.
  Status wait(double* exposed = nullptr);
  // Wall seconds of the last job.
  double last_job_seconds() const { return job_seconds_; }

 private:
  void loop();

  const bool overlap_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::optional<FunctionRef<Status()>> job_;
  bool pending_ = false, finished_ = true, stop_ = false;
  Status status_;
  double job_seconds_ = 0;
  std::thread thread_;  // last: starts after the members it reads
};

}  // namespace v4
