// Guided choice (vLLM's guided_choice over token ids): the output must be exactly one of a set
// of token sequences, followed by an end token when one is given. The state is the set of
// sequences still consistent with the output so far, so it advances only on sampled tokens and
// survives preemption by recompute unchanged.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace v4 {

class GuidedChoice {
 public:
  GuidedChoice() = default;
  // `end`: the token allowed once a sequence is complete; without one a complete sequence
  // ends the output (so a sequence that is a strict prefix of another wins over it).
  GuidedChoice(std::vector<std::vector<int32_t>> outputs, std::optional<int32_t> end);

  bool active() const { return !outputs_.empty(); }
  // Token ids that may come next, ascending and distinct.
  std::vector<int32_t> allowed() const;
  void advance(int32_t token);
  // The output so far equals one of the sequences.
  bool complete() const;

 private:
  std::vector<std::vector<int32_t>> outputs_;
  std::optional<int32_t> end_;
  std::vector<size_t> live_;  // indices of outputs_ that extend the output so far
  size_t length_ = 0;         // tokens of output so far
};

}  // namespace v4
