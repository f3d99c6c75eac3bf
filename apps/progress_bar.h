// Progress of long start-up work (generating the default model, reading weights): on a
// terminal one line redrawn in place; otherwise (logs, CI) an info log line every few seconds
// and one at the end.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace v4::apps {

class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t total_bytes);
  void update(uint64_t done_bytes);
  void finish();

 private:
  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double next_report_ = 0.0;
  bool tty_;
  bool finished_ = false;
};

}  // namespace v4::apps
