#include "model/v4/v4_forward.h"

#include <algorithm>
#include <string>

#include "model/v4/moe.h"
#include "model/v4/rope.h"

namespace v4 {
namespace {

HcMixing hc_mixing(const V4Config& c, const WeightMatrix& fn, const std::vector<float>& scale,
                   const std::vector<float>& base) {
  return {&fn.view, scale.data(),        base.data(), c.n_hc,
          c.n_embd, c.hc_sinkhorn_iters, c.hc_eps,    c.rms_eps};
}

Status build_batch(const V4Config& c, std::span<const SequenceInput> inputs, ForwardBatch& b) {
  for (size_t s = 0; s < inputs.size(); ++s) {
    const SequenceInput& in = inputs[s];
    if (!in.state) return Status::error("sequence " + std::to_string(s) + " has no state");
    if (std::find(b.states.begin(), b.states.end(), in.state) != b.states.end()) {
      return Status::error("sequence " + std::to_string(s) + " appears twice in one step");
    }
    b.sequence_begin.push_back(b.size());
    b.states.push_back(in.state);
    const uint64_t start = in.state->n_past();
    for (size_t i = 0; i < in.tokens.size(); ++i) {
      const int32_t tok = in.tokens[i];
      if (tok < 0 || static_cast<uint32_t>(tok) >= c.n_vocab) {
        return Status::error("sequence " + std::to_string(s) + ": token id " + std::to_string(tok) +
                             " outside the vocabulary of " + std::to_string(c.n_vocab));
      }
      b.tokens.push_back(tok);
      b.positions.push_back(start + i);
      b.sequence_of.push_back(static_cast<uint32_t>(s));
    }
    if (Status st = in.state->reserve(in.tokens.size()); !st) return st;
  }
  b.sequence_begin.push_back(b.size());
  return Status::ok();
}

}  // namespace

V4Forward::V4Forward(const V4Weights& weights, Backend& backend, ExpertDispatcher* experts,
                     ForwardLimits limits)
    : weights_(weights),
      backend_(backend),
      local_experts_(experts ? nullptr : std::make_unique<LocalExpertDispatcher>(backend)),
      experts_(experts ? *experts : *local_experts_) {
  plain_rope_.freqs = rope_frequencies(rope_params_for_ratio(weights.config, 0));
  compressed_rope_.freqs = rope_frequencies(rope_params_for_ratio(weights.config, 4));
  stats_.expert_selections.assign(weights.config.n_layer,
                                  std::vector<uint64_t>(weights.config.n_expert, 0));
  ws_.reserve(weights.config, limits, backend.threads());
}

// One block (spec §2): HC_pre → attention → HC_post, HC_pre → MoE → HC_post.
void V4Forward::block_forward(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer,
                              std::vector<float>& x, std::vector<float>& next) {
  const V4Config& c = ctx.config;
  const int64_t n = ctx.batch.size();
  const size_t nn = static_cast<size_t>(n);
  ForwardWorkspace& ws = ctx.ws;
  float* post = fit(ws.post, nn * c.n_hc);
  float* comb = fit(ws.comb, nn * c.n_hc * c.n_hc);
  float* y = fit(ws.y, nn * c.n_embd);
  float* f = fit(ws.f, nn * c.n_embd);
  fit(next, nn * c.n_hc * c.n_embd);
  backend_.hc_pre(hc_mixing(c, w.hc_attn.fn, w.hc_attn.scale, w.hc_attn.base), x.data(), n, y, post,
                  comb);
  backend_.rms_norm(y, w.attn_norm.data(), c.n_embd, n, c.rms_eps, y);
  attention_forward(ctx, w, layer, w.compress_ratio == 0 ? plain_rope_ : compressed_rope_, y, f);
  backend_.hc_post(f, x.data(), post, comb, n, c.n_hc, c.n_embd, next.data());
  x.swap(next);
  backend_.hc_pre(hc_mixing(c, w.hc_ffn.fn, w.hc_ffn.scale, w.hc_ffn.base), x.data(), n, y, post,
                  comb);
  backend_.rms_norm(y, w.ffn_norm.data(), c.n_embd, n, c.rms_eps, y);
  // The MTP block (layer n_layer) has no counters.
  uint64_t* selections = layer < c.n_layer ? ctx.stats.expert_selections[layer].data() : nullptr;
  moe_forward(ctx, w, layer, y, f, selections);
  backend_.hc_post(f, x.data(), post, comb, n, c.n_hc, c.n_embd, next.data());
  x.swap(next);
}

// HC head + output norm + vocabulary projection (spec §3.6) for n HC states.
void V4Forward::head_logits(const float* x, int64_t n, const HcHeadWeights& head,
                            const std::vector<float>& norm, float* logits) {
  const V4Config& c = weights_.config;
  float* z = fit(ws_.head_z, static_cast<size_t>(n * c.n_embd));
  backend_.hc_head(hc_mixing(c, head.fn, head.scale, head.base), x, n, z);
  backend_.rms_norm(z, norm.data(), c.n_embd, n, c.rms_eps, z);
  backend_.matmul(weights_.output.view, z, n, logits);
}

Result<ForwardOutput> V4Forward::forward(std::span<const SequenceInput> inputs) {
  ForwardOutput out;
  if (Status s = forward(inputs, out); !s) return s;
  return out;
}

Status V4Forward::forward(std::span<const SequenceInput> inputs, ForwardOutput& out) {
  const V4Config& c = weights_.config;
  ForwardBatch& b = batch_;
  b.clear();
  if (Status s = build_batch(c, inputs, b); !s) return s;
  const ForwardContext ctx{c, backend_, experts_, ws_, b, stats_};
  const int64_t n = b.size(), flat = int64_t{c.n_hc} * c.n_embd;
  const size_t nn = static_cast<size_t>(n);

  // Embedding, copied into every HC stream (spec §3.1).
  fit(ws_.x, nn * flat);
  fit(ws_.next, nn * flat);
  backend_.embed(weights_.token_embd.view, b.tokens.data(), n, c.n_hc, ws_.x.data());
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    block_forward(ctx, weights_.layers[il], il, ws_.x, ws_.next);
  }

  out.logits.clear();
  out.hidden.clear();
  out.first_row.clear();
  out.row_count.clear();
  int64_t* rows = fit(ws_.rows, nn);
  uint8_t* keep = fit(ws_.keep, nn);
  size_t n_rows = 0;
  for (size_t s = 0; s < inputs.size(); ++s) {
    const int64_t begin = b.sequence_begin[s], end = b.sequence_begin[s + 1];
    out.first_row.push_back(n_rows);
    for (int64_t t = inputs[s].all_logits ? begin : std::max(begin, end - 1); t < end; ++t) {
      rows[n_rows] = t;
      keep[n_rows++] = inputs[s].keep_hidden ? 1 : 0;
    }
    out.row_count.push_back(n_rows - out.first_row.back());
    b.states[s]->advance(static_cast<uint64_t>(end - begin));
  }
  float* selected = fit(ws_.selected, n_rows * static_cast<size_t>(flat));
  backend_.gather_rows(ws_.x.data(), flat, rows, static_cast<int64_t>(n_rows), selected);
  for (size_t r = 0; r < n_rows; ++r) {
    if (keep[r])
      out.hidden.insert(out.hidden.end(), selected + r * flat, selected + (r + 1) * flat);
  }
  out.logits.resize(n_rows * c.n_vocab);
  head_logits(selected, static_cast<int64_t>(n_rows), weights_.output_hc, weights_.output_norm,
              out.logits.data());
  return Status::ok();
}

}  // namespace v4
