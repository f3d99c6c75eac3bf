// Stop strings on streamed text (OpenAI `stop`): text is released only once it cannot be the
// start of a stop string, so nothing at or after a stop ever reaches the client, however the
// stop string is split across tokens.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace v4::router {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends text; returns what is now safe to release. After a match, returns the text before
  // the stop and stopped() is true; later pushes return "".
  std::string push(std::string_view text);
  // Releases the held tail (no stop can complete any more: end of output or a special token).
  std::string flush();
  bool stopped() const { return stopped_; }
  // The stop string that matched ("" if none).
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace v4::router
