// Padded decode steps (docs/design.md, "Decode steps as graphs"). A recording bakes in its step's
// token count, so without padding every batch size a server passes through needs its own; with
// it a handful do. The padding rows come last, one token each at position 0 of one shared state
// (padding_kv_state.h). The forward is batch-invariant by construction (each row's arithmetic
// depends on its own token and position only), so the real rows' outputs are those of the
// unpadded step, bit for bit; the expert statistics count the real rows alone
// (ForwardContext::counted_pairs).
#include <algorithm>

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
  int64_t bucket = decode_bucket(n);
  if (max_tokens_ > 0) bucket = std::min(bucket, std::max(max_tokens_, n));
  if (bucket == n) return inputs;
  const KvLayout& layout = inputs.front().state->layout();
  if (!padding_ || !same_layout(padding_->layout(), layout))
    padding_ = std::make_unique<PaddingKvState>(layout, backend_, weights_.config.sliding_window);
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

}  // namespace v4
