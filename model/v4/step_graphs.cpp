#include "model/v4/step_graphs.h"

#include <algorithm>
#include <bit>
#include <chrono>

namespace v4 {
namespace {

constexpr uint32_t kMaxCaptureFailures = 2;
constexpr uint64_t kSmallestPositionBound = 256;

}  // namespace

StepGraphs::StepGraphs(Backend& backend, size_t capacity, uint64_t min_positions)
    : backend_(backend), capacity_(capacity), min_bound_(position_bound(min_positions)) {}

uint64_t StepGraphs::position_bound(uint64_t position_end) {
  return std::bit_ceil(std::max(position_end, kSmallestPositionBound));
}

StepGraphs::Entry* StepGraphs::find(const StepGraphShape& shape) {
  for (Entry& e : entries_) {
    if (e.shape == shape) return &e;
  }
  return nullptr;
}

StepGraphs::Entry& StepGraphs::add(const StepGraphShape& shape) {
  if (entries_.size() >= capacity_) {
    auto oldest =
        std::min_element(entries_.begin(), entries_.end(),
                         [](const Entry& a, const Entry& b) { return a.last_used < b.last_used; });
    stats_.evictions += oldest->graph != nullptr;
    entries_.erase(oldest);
  }
  entries_.push_back(Entry{shape, nullptr, 0, 0});
  return entries_.back();
}

Status StepGraphs::capture(Entry& e, FunctionRef<void()> step) {
  const auto start = std::chrono::steady_clock::now();
  backend_.begin_capture();
  step();
  Result<std::unique_ptr<StepGraph>> graph = backend_.end_capture();
  stats_.capture_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!graph) {
    // Nothing ran while capturing: the step runs as it is.
    ++e.failures;
    ++stats_.broken;
    step();
    return Status::ok();
  }
  ++stats_.captures;
  e.graph = std::move(*graph);
  return Status::ok();
}

Status StepGraphs::run(const StepGraphShape& shape, const StepGraphGenerations& generations,
                       FunctionRef<void()> step) {
  if (!enabled()) {
    step();
    return Status::ok();
  }
  if (!(generations == generations_)) {
    // A buffer some recording points into has moved since: none of them may run again. The
    // shapes stay known: buffers only grow, so each still fits and is recorded on its next step.
    stats_.invalidations += std::any_of(entries_.begin(), entries_.end(),
                                        [](const Entry& e) { return e.graph != nullptr; });
    for (Entry& e : entries_) {
      e.graph.reset();
      e.failures = 0;
    }
    generations_ = generations;
  }
  Entry* e = find(shape);
  if (!e) {
    add(shape).last_used = ++clock_;
    step();
    return Status::ok();
  }
  e->last_used = ++clock_;
  if (!e->graph && e->failures >= kMaxCaptureFailures) {
    step();
    return Status::ok();
  }
  if (!e->graph) {
    if (Status s = capture(*e, step); !s || !e->graph) return s;
  }
  ++stats_.replays;
  return backend_.replay(*e->graph);
}

}  // namespace v4
