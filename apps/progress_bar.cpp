#include "apps/progress_bar.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

namespace v4::apps {

ProgressBar::ProgressBar(std::string label, uint64_t total_bytes)
    : label_(std::move(label)), total_(total_bytes), tty_(isatty(fileno(stderr)) != 0) {}

void ProgressBar::update(uint64_t done_bytes) {
  done_ = done_bytes;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double fraction = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    std::fprintf(stderr, "\r%s [%s%s] %5.1f%% %9.1f / %.1f MiB %6.1fs", label_.c_str(),
                 std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(),
                 100.0 * fraction, done_ / 1048576.0, total_ / 1048576.0, secs);
    std::fflush(stderr);
    return;
  }
  if (secs < next_report_) return;
  next_report_ = secs + 5.0;
  spdlog::info("{}: {:.1f}% ({:.1f} / {:.1f} MiB, {:.1f}s)", label_, 100.0 * fraction,
               done_ / 1048576.0, total_ / 1048576.0, secs);
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (tty_) {
    update(total_);
    std::fputc('\n', stderr);
  }
  spdlog::info("{}: done, {:.1f} MiB in {:.1f}s", label_, total_ / 1048576.0, secs);
}

}  // namespace v4::apps
