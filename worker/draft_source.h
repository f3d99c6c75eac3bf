// Where the drafts of speculative decoding come from (docs/design.md, speculative decoding).
// The worker verifies every draft against the token the request's own sampler picks, so a
// source only decides how many drafts are accepted, never which tokens a request produces.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "scheduler/step_plan.h"

namespace v4 {

// The most drafts one step verifies (the request option's upper bound).
constexpr uint32_t kMaxSpeculativeTokens = 3;

class DraftSource {
 public:
  virtual ~DraftSource() = default;

  // Verified facts of a request's stream after a step: the main model's final HC states
  // (n_hc·n_embd floats per row) of positions [first, first + rows), and the stream's tokens at
  // positions [first, first + tokens.size()).
  virtual Status observe(RequestId id, uint64_t first, std::span<const float> hidden, size_t rows,
                         std::span<const int32_t> tokens) = 0;
  // Up to `count` tokens to follow `chunk`, the stream's tokens at [first, first + chunk.size())
  // that this step runs; none when the source lacks what it needs.
  virtual Result<std::vector<int32_t>> draft(RequestId id, uint64_t first,
                                             std::span<const int32_t> chunk, uint32_t count) = 0;
  // The request finished, was cancelled or lost its KV state (preemption).
  virtual void forget(RequestId id) = 0;
};

}  // namespace v4
