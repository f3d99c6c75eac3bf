// Padded decode steps (docs/design.md, "Decode steps as graphs"). A recording bakes in its step's
// token count, so without padding every batch size a server passes through needs its own; with
// it a handful do. The padding rows come last, one token each at position 0 of one shared state
// (padding_kv_state.h). The forward is batch-invariant by construction (each row's arithmetic
// depends on its own token and position only), so the real rows' outputs are those of the
// unpadded step, bit for bit; the expert statistics count the real rows alone
// (ForwardContext::counted_pairs).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "model/v4/v4_forward.h"

namespace v4 {
namespace {

// The one token a padding row runs.
constexpr int32_t kPaddingToken = 0;

// A step whose every row is a decode row that returns only compact outputs (candidates or a
// drawn token): padding it keeps it recordable whatever the batch size (V4Forward::recordable).
bool paddable(std::span<const SequenceInput> inputs) {
  return std::all_of(inputs.begin(), inputs.end(), [](const SequenceInput& in) {
    return in.tokens.size() == 1 && !in.all_logits && !in.keep_hidden && !in.no_logits &&
           (in.top_candidates > 0 || in.draw.has_value());
  });
}

bool same_layout(const KvLayout& a, const KvLayout& b) {
  return a.format == b.format && a.layers == b.layers && a.carry_floats == b.carry_floats;
}

}  // namespace

int64_t decode_bucket(int64_t n) {
  if (n <= 1) return 1;
  int64_t p = 1;
  while (p < n) p *= 2;
  if (p <= 8) return p;
  const int64_t between = p / 4 * 3;  // 1.5 · p/2
  return n <= between ? between : p;
}

std::span<const SequenceInput> V4Forward::pad_decode_step(std::span<const SequenceInput> inputs) {
  padding_rows_ = 0;
  if (!pad_decode_steps_ || !graphs_.enabled() || !experts_.graph_generation() ||
      !paddable(inputs)) {
    return inputs;
  }
  const auto n = static_cast<int64_t>(inputs.size());
  const int64_t bucket = padded_size(n);
  if (bucket == n) return inputs;
  make_padding_state(inputs.front().state->layout());
  // The padding rows ask for what the last real row asks for, so that the step's compact
  // outputs, and with them its recording's shape, are those of the real rows.
  static const int32_t token = kPaddingToken;
  SequenceInput pad = inputs.back();
  pad.state = padding_.get();
  pad.tokens = {&token, 1};
  padded_inputs_.assign(inputs.begin(), inputs.end());
  padded_inputs_.resize(static_cast<size_t>(bucket), pad);
  padding_rows_ = static_cast<size_t>(bucket - n);
  return padded_inputs_;
}

int64_t V4Forward::padded_size(int64_t n) const {
  const int64_t bucket = decode_bucket(n);
  // No step holds more than max_tokens tokens (the workspace is sized for that many).
  return max_tokens_ > 0 ? std::min(bucket, std::max(max_tokens_, n)) : bucket;
}

void V4Forward::make_padding_state(const KvLayout& layout) {
  if (!padding_ || !same_layout(padding_->layout(), layout))
    padding_ = std::make_unique<PaddingKvState>(layout, backend_, weights_.config.sliding_window);
}

// Every per-sequence output back to the real sequences' (the padding rows return no logits).
void V4Forward::drop_padding(size_t real, ForwardOutput& out) {
  out.first_row.resize(real);
  out.row_count.resize(real);
  out.candidate_ids.resize(real * out.candidate_k);
  out.candidate_logits.resize(real * out.candidate_k);
  if (!out.log_normalizer.empty()) out.log_normalizer.resize(real);
  out.drawn_tokens.resize(real);
  out.drawn_logits.resize(real);
}

std::vector<int64_t> V4Forward::padded_sizes(int64_t max_sequences) const {
  // A decode step has one token per sequence, so no more sequences than max_tokens; below that
  // padded_size() does not decrease as n falls, and equal sizes are neighbours.
  int64_t most = std::max<int64_t>(max_sequences, 1);
  if (max_tokens_ > 0) most = std::min(most, max_tokens_);
  std::vector<int64_t> sizes;
  for (int64_t n = most; n >= 1; --n) {
    const int64_t b = padded_size(n);
    if (sizes.empty() || sizes.back() != b) sizes.push_back(b);
  }
  return sizes;
}

namespace {

// A row of each sampling kind a server's decode steps have: drawn (temperature > 0), greedy
// (its best token), and both (a step that mixes them records the same way).
std::vector<SequenceInput> sampling_kinds(KvStateStore* state) {
  static const int32_t token = kPaddingToken;
  SequenceInput sampled{state, {&token, 1}};
  sampled.draw = kernels::RowDrawParams{{1.0f, 1.0f, 0.0f}, 0, 0};
  SequenceInput greedy{state, {&token, 1}};
  greedy.top_candidates = 1;
  SequenceInput both = sampled;
  both.top_candidates = 1;
  return {sampled, greedy, both};
}

}  // namespace

Result<DecodeGraphCapture> V4Forward::capture_decode_graphs(const KvLayout& layout,
                                                            int64_t max_sequences,
                                                            double budget_seconds) {
  DecodeGraphCapture report;
  if (!graphs_.enabled() || !experts_.graph_generation()) {
    report.stopped = "this backend or expert dispatcher records no step graphs";
    return report;
  }
  char budget[32];
  std::snprintf(budget, sizeof budget, "%g", budget_seconds);
  if (!(budget_seconds > 0)) {
    report.stopped = "no start-up budget (" + std::string(budget) + " s)";
    return report;
  }
  const auto start = std::chrono::steady_clock::now();
  const auto spent = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  make_padding_state(layout);
  report.batch_sizes = padded_sizes(max_sequences);
  const std::vector<SequenceInput> kinds = sampling_kinds(padding_.get());
  report.kinds = static_cast<uint32_t>(kinds.size());
  report.position_bound = graphs_.bound_for(1);
  report.shapes = report.batch_sizes.size() * kinds.size();
  const uint64_t captured_before = graphs_.stats().captures;
  ForwardOutput out;
  // A padding-only step: every row is padding, so none is counted.
  const auto run = [&](const SequenceInput& kind, int64_t rows) -> Status {
    padded_inputs_.assign(static_cast<size_t>(rows), kind);
    padding_rows_ = static_cast<size_t>(rows);
    clear_output(out);
    Status s = run_step(padded_inputs_, out);
    padding_rows_ = 0;
    return s;
  };
  // The largest steps first, once each (a shape's first step runs as it is): every buffer is
  // then as large as any of these steps needs, and no later step moves one a recording uses.
  for (const SequenceInput& kind : kinds) {
    if (Status s = run(kind, report.batch_sizes.front()); !s) return s;
  }
  for (const SequenceInput& kind : kinds) {
    for (size_t i = 0; i < report.batch_sizes.size(); ++i) {
      if (spent() > budget_seconds) {
        report.stopped = "the start-up budget of " + std::string(budget) +
                         " s was spent; the other shapes are recorded on first use";
        break;
      }
      // Sized above for the largest; the others' first step, then the recording.
      if (i > 0) {
        if (Status s = run(kind, report.batch_sizes[i]); !s) return s;
      }
      if (Status s = run(kind, report.batch_sizes[i]); !s) return s;
    }
  }
  report.recorded = graphs_.stats().captures - captured_before;
  report.seconds = spent();
  return report;
}

}  // namespace v4
