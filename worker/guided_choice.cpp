#include "worker/guided_choice.h"

#include <algorithm>
#include <numeric>
#include <utility>

namespace v4 {

GuidedChoice::GuidedChoice(std::vector<std::vector<int32_t>> outputs, std::optional<int32_t> end)
    : outputs_(std::move(outputs)), end_(end), live_(outputs_.size()) {
  std::iota(live_.begin(), live_.end(), size_t{0});
}

std::vector<int32_t> GuidedChoice::allowed() const {
  std::vector<int32_t> ids;
  for (size_t i : live_) {
    const std::vector<int32_t>& seq = outputs_[i];
    if (seq.size() > length_) {
      ids.push_back(seq[length_]);
    } else if (end_) {
      ids.push_back(*end_);
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

void GuidedChoice::advance(int32_t token) {
  std::erase_if(live_, [&](size_t i) {
    const std::vector<int32_t>& seq = outputs_[i];
    return seq.size() <= length_ || seq[length_] != token;
  });
  ++length_;
}

bool GuidedChoice::complete() const {
  return std::any_of(live_.begin(), live_.end(),
                     [&](size_t i) { return outputs_[i].size() == length_; });
}

}  // namespace v4
