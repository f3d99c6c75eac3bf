// Stop strings (OpenAI `stop`). The output stops where the first stop string completes while
// reading the text left to right; of stops completing at the same byte the longest wins. That
// rule depends only on the text, never on how it was split into pushes, so streamed and whole
// outputs agree.
#include "router/openai/stop_matcher.h"

#include <algorithm>
#include <utility>

namespace v4::router {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (std::string& stop : stops) {
    if (!stop.empty()) stops_.push_back(std::move(stop));
  }
}

std::string StopMatcher::push(std::string_view text) {
  if (stopped_) return "";
  held_.append(text);
  // The first occurrence of a stop is the one that completes first; no stop is complete in the
  // text held before this push, so a search of the whole buffer is exact.
  size_t best_end = std::string::npos;
  const std::string* best = nullptr;
  for (const std::string& stop : stops_) {
    const size_t at = held_.find(stop);
    if (at == std::string::npos) continue;
    const size_t end = at + stop.size();
    if (end < best_end || (end == best_end && stop.size() > best->size())) {
      best_end = end;
      best = &stop;
    }
  }
  if (best != nullptr) {
    std::string released = held_.substr(0, best_end - best->size());
    matched_ = *best;
    stopped_ = true;
    held_.clear();
    return released;
  }
  // Hold the longest suffix that is still the start of some stop string.
  size_t keep = 0;
  for (const std::string& stop : stops_) {
    const size_t limit = std::min(held_.size(), stop.size() - 1);
    for (size_t k = limit; k > keep; --k) {
      if (held_.compare(held_.size() - k, k, stop, 0, k) == 0) {
        keep = k;
        break;
      }
    }
  }
  std::string released = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return released;
}

std::string StopMatcher::flush() {
  if (stopped_) return "";
  return std::exchange(held_, std::string());
}

}  // namespace v4::router
