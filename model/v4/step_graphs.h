// Decode steps as graphs (docs/design.md, "Decode steps as graphs"): a step's kernels recorded
// once per step shape and launched again in one call, so that a GPU's decode step is not the sum
// of a few thousand launch latencies. What a recording may bake in, and so what a shape is:
// - the step's token and sequence counts, and the head's compact outputs (candidates, their
//   normalizers, draws): they size the launches;
// - a bound on the step's positions, rounded up to a power of two: it sizes the attention's
//   scratch. Every kernel reads the real positions from the device, and rows past a token's
//   own count are never read, so a larger bound changes no result (the forward is
//   batch-invariant by construction: each token's arithmetic depends on its own position only).
// Everything else the kernels read lives at fixed device addresses the host refills before each
// launch: token ids, positions, KV views, draw parameters. A recording is valid while the
// buffers it points into stay where they were (the generations below).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/function_ref.h"
#include "core/status.h"
#include "model/backend/backend.h"

namespace v4 {

struct StepGraphShape {
  int64_t n_tokens = 0;
  uint64_t position_bound = 0;  // StepGraphs::position_bound of the step's positions
  uint32_t candidate_k = 0;     // top_logits' k; 0: none
  bool normalizers = false;     // top_logits also returns the log-normalizers
  bool draws = false;           // draw_rows runs
  bool operator==(const StepGraphShape&) const = default;
};

// Where the buffers a recording reads were: the backend's scratch, the forward's workspace and
// the expert dispatcher's buffers each count their moves.
struct StepGraphGenerations {
  uint64_t scratch = 0, workspace = 0, experts = 0;
  bool operator==(const StepGraphGenerations&) const = default;
};

struct StepGraphStats {
  uint64_t captures = 0;       // recordings made
  uint64_t replays = 0;        // steps launched from a recording
  uint64_t broken = 0;         // captures that failed (the step then ran without one)
  uint64_t invalidations = 0;  // times every recording was dropped (a buffer moved)
  uint64_t evictions = 0;      // recordings dropped to stay within the capacity
  double capture_seconds = 0;  // spent recording and instantiating
};

class StepGraphs {
 public:
  // At most `capacity` recordings are kept (the least recently used goes); 0 turns graphs off.
  // Steps whose positions are all below `min_positions` (rounded up to a power of two) share
  // recordings sized for it.
  StepGraphs(Backend& backend, size_t capacity, uint64_t min_positions = 0);

  // The positions bound a recorded step is sized for: one past its largest position, rounded up
  // to a power of two of at least 256, so that a sequence's decode steps share a recording for
  // long stretches.
  static uint64_t position_bound(uint64_t position_end);
  // position_bound, and at least this instance's min_positions.
  uint64_t bound_for(uint64_t position_end) const {
    return std::max(position_bound(position_end), min_bound_);
  }

  bool enabled() const { return capacity_ > 0 && backend_.can_capture(); }

  // Runs `step` (the step's device work and nothing else: no copy to or from the host, no
  // allocation). A shape seen for the first time runs as it is, which sizes every buffer for
  // it; the second time it is recorded, and from then on replayed. A recording that fails
  // (an op needed the host) is not retried more than twice; the step then runs as it is.
  Status run(const StepGraphShape& shape, const StepGraphGenerations& generations,
             FunctionRef<void()> step);

  const StepGraphStats& stats() const { return stats_; }

 private:
  struct Entry {
    StepGraphShape shape;
    std::unique_ptr<StepGraph> graph;  // null until recorded
    uint32_t failures = 0;
    uint64_t last_used = 0;
  };
  Entry* find(const StepGraphShape& shape);
  Entry& add(const StepGraphShape& shape);  // evicts the least recently used when full
  Status capture(Entry& e, FunctionRef<void()> step);

  Backend& backend_;
  size_t capacity_;
  uint64_t min_bound_;
  std::vector<Entry> entries_;
  StepGraphGenerations generations_;
  uint64_t clock_ = 0;
  StepGraphStats stats_;
};

}  // namespace v4
