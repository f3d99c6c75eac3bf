#include "apps/startup_phases.h"

#include <cstdio>

namespace v4 {
namespace {

std::string seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f s", s);
  return text;
}

}  // namespace

void StartupPhases::end(std::string name) {
  const Clock::time_point now = Clock::now();
  phases_.emplace_back(std::move(name), std::chrono::duration<double>(now - mark_).count());
  mark_ = now;
}

std::string StartupPhases::summary() const {
  std::string text =
      "started in " + seconds(std::chrono::duration<double>(mark_ - start_).count()) + " (";
  for (size_t i = 0; i < phases_.size(); ++i) {
    if (i > 0) text += ", ";
    text += phases_[i].first + " " + seconds(phases_[i].second);
  }
  return text + ")";
}

}  // namespace v4
