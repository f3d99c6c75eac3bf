// Where start-up time goes: `serve` and `worker` time their phases (loading the model, the
// tokenizer, the device upload, the engine with its KV pool, a group's rendezvous) and print
// one line before the listening line, so a slow start says what it waited for.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace v4 {

class StartupPhases {
 public:
  StartupPhases() : start_(Clock::now()), mark_(start_) {}

  // Ends the phase running since the last call (or construction) under `name`.
  void end(std::string name);
  // "started in T s (name t s, …)": the total and each phase, in order.
  std::string summary() const;

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_, mark_;
  std::vector<std::pair<std::string, double>> phases_;
};

}  // namespace v4
