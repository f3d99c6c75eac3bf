// The head's end of a step (spec §3.6): logits of the selected rows in batches of the workspace's
// logit rows, and what each row sends back — its logits, or its compact outputs (best tokens,
// normalizer, drawn token; docs/design.md, "What a sampled row sends back").
#include <algorithm>

#include "model/v4/v4_forward.h"

namespace v4 {

Status V4Forward::copy_out_logits(std::span<const SequenceInput> inputs, int64_t n_rows,
                                  ForwardOutput& out) {
  const V4Config& c = weights_.config;
  const int64_t flat = int64_t{c.n_hc} * c.n_embd;
  // Batches of the workspace's logit rows: the step's copy out.
  for (int64_t first = 0; first < n_rows; first += ws_.logit_rows()) {
    const LogitBatch rows{first, std::min(ws_.logit_rows(), n_rows - first)};
    head_logits(ws_.selected.data<float>() + first * flat, rows.count, weights_.output_hc,
                weights_.output_norm, ws_.logits.data<float>());
    const CompactPlan plan = plan_compact(inputs, rows);
    if (plan.draws) {
      if (Status s = stage_draws(inputs, rows, out.candidate_k); !s) return s;
    }
    launch_compact(plan, rows, out.candidate_k);
    if (Status s = copy_logit_runs(rows, out); !s) return s;
    if (Status s = read_compact(plan, inputs, rows, out); !s) return s;
  }
  return Status::ok();
}

// Runs of a logit batch's rows that return their logits go out in one copy each (from
// ws_.logits, where the head left the batch).
Status V4Forward::copy_logit_runs(LogitBatch rows, ForwardOutput& out) {
  const size_t vocab = weights_.config.n_vocab;
  const size_t row_bytes = vocab * sizeof(float);
  const int64_t* target = row_target_.data() + rows.first;
  for (int64_t r = 0; r < rows.count;) {
    int64_t run = 0;
    while (r + run < rows.count && target[r + run] >= 0) ++run;
    if (run == 0) {
      ++r;
      continue;
    }
    if (Status s = backend_.copy_to_host(ws_.logits, static_cast<size_t>(r) * row_bytes,
                                         out.logits.data() + target[r] * vocab,
                                         static_cast<size_t>(run) * row_bytes);
        !s) {
      return s;
    }
    r += run;
  }
  return Status::ok();
}

// Where a logit batch's compact rows sit in ws_.candidates: the batches' CompactRowsLayout
// blocks end to end (a block's size is linear in its rows, so the batch from row `first` starts
// where a block of `first` rows would end).
size_t V4Forward::compact_block(LogitBatch rows, uint32_t k) {
  return CompactRowsLayout::of(static_cast<size_t>(rows.first), k).end;
}

// What the compact rows among `rows` need: candidates for every row when any row wants them (one
// launch), their normalizers, the draws of the rows that asked for one.
V4Forward::CompactPlan V4Forward::plan_compact(std::span<const SequenceInput> inputs,
                                               LogitBatch rows) const {
  const int64_t* target = row_target_.data() + rows.first;
  CompactPlan plan;
  for (int64_t r = 0; r < rows.count; ++r) {
    if (target[r] >= 0) continue;
    const SequenceInput& in = inputs[static_cast<size_t>(-1 - target[r])];
    plan.candidates = plan.candidates || in.top_candidates > 0;
    plan.normalize = plan.normalize || in.candidate_logprobs;
    plan.draws = plan.draws || in.draw.has_value();
  }
  return plan;
}

// The draw parameters of a logit batch's rows (temperature 0, not drawn, for the others) into
// its block of ws_.candidates.
Status V4Forward::stage_draws(std::span<const SequenceInput> inputs, LogitBatch rows, uint32_t k) {
  const size_t n = static_cast<size_t>(rows.count);
  const int64_t* target = row_target_.data() + rows.first;
  draw_params_.assign(n, kernels::RowDrawParams{});
  for (size_t r = 0; r < n; ++r) {
    if (target[r] >= 0) continue;
    const SequenceInput& in = inputs[static_cast<size_t>(-1 - target[r])];
    if (in.draw) draw_params_[r] = *in.draw;
  }
  const CompactRowsLayout at = CompactRowsLayout::of(n, k);
  return backend_.copy_to_device(draw_params_.data(), ws_.candidates,
                                 compact_block(rows, k) + at.params, at.end - at.params);
}

void V4Forward::launch_compact(const CompactPlan& plan, LogitBatch rows, uint32_t k) {
  const V4Config& c = weights_.config;
  const CompactRowsLayout at = CompactRowsLayout::of(static_cast<size_t>(rows.count), k);
  uint8_t* base = ws_.candidates.data<uint8_t>() + compact_block(rows, k);
  if (plan.candidates) {
    backend_.top_logits(
        ws_.logits.data<float>(), rows.count, c.n_vocab, k,
        reinterpret_cast<int32_t*>(base + at.ids), reinterpret_cast<float*>(base + at.logits),
        plan.normalize ? reinterpret_cast<double*>(base + at.normalizers) : nullptr);
  }
  if (plan.draws) {
    backend_.draw_rows(ws_.logits.data<float>(), rows.count, c.n_vocab,
                       reinterpret_cast<const kernels::RowDrawParams*>(base + at.params),
                       reinterpret_cast<int32_t*>(base + at.tokens),
                       reinterpret_cast<float*>(base + at.token_logits));
  }
}

// One copy back of what launch_compact left (ids, logits, the normalizers when asked for, the
// draws when any), then each sequence's share.
Status V4Forward::read_compact(const CompactPlan& plan, std::span<const SequenceInput> inputs,
                               LogitBatch rows, ForwardOutput& out) {
  if (!plan.candidates && !plan.draws) return Status::ok();
  const size_t n = static_cast<size_t>(rows.count), k = out.candidate_k;
  const int64_t* target = row_target_.data() + rows.first;
  const CompactRowsLayout at = CompactRowsLayout::of(n, k);
  const size_t bytes = plan.draws ? at.params : plan.normalize ? at.tokens : at.normalizers;
  auto* host = reinterpret_cast<uint8_t*>(fit(candidates_host_, (at.params + 7) / 8));
  if (Status s =
          backend_.copy_to_host(ws_.candidates, compact_block(rows, out.candidate_k), host, bytes);
      !s) {
    return s;
  }
  const auto* host_ids = reinterpret_cast<const int32_t*>(host + at.ids);
  const auto* host_logits = reinterpret_cast<const float*>(host + at.logits);
  const auto* host_normalizers = reinterpret_cast<const double*>(host + at.normalizers);
  const auto* host_tokens = reinterpret_cast<const int32_t*>(host + at.tokens);
  const auto* host_token_logits = reinterpret_cast<const float*>(host + at.token_logits);
  for (size_t r = 0; r < n; ++r) {
    if (target[r] >= 0) continue;
    const size_t seq = static_cast<size_t>(-1 - target[r]);
    if (plan.candidates) {
      std::copy_n(host_ids + r * k, k, out.candidate_ids.begin() + static_cast<ptrdiff_t>(seq * k));
      std::copy_n(host_logits + r * k, k,
                  out.candidate_logits.begin() + static_cast<ptrdiff_t>(seq * k));
    }
    if (plan.normalize) out.log_normalizer[seq] = host_normalizers[r];
    if (inputs[seq].draw) {
      out.drawn_tokens[seq] = host_tokens[r];
      out.drawn_logits[seq] = host_token_logits[r];
    }
  }
  return Status::ok();
}

}  // namespace v4
