#include "model/v4/v4_forward.h"

#include <algorithm>
#include <string>

#include "kernels/cpu/quant.h"
#include "model/v4/hyper_connections.h"
#include "model/v4/moe.h"
#include "model/v4/rope.h"

namespace v4 {
namespace {

// HC_pre for the batch (spec §3.2): returns the sub-layer inputs y [n][n_embd] and fills the
// per-token post gates [n][n_hc] and combine matrices [n][n_hc²].
std::vector<float> hc_pre(const ForwardContext& ctx, const HcWeights& hc,
                          const std::vector<float>& x, std::vector<float>& post,
                          std::vector<float>& comb) {
  const V4Config& c = ctx.config;
  const int64_t n = ctx.batch.size(), flat = int64_t{c.n_hc} * c.n_embd;
  const int64_t mixes = hc.fn.rows();
  std::vector<float> normed(x.size()), m(static_cast<size_t>(n * mixes));
  ctx.backend.rms_norm(x.data(), nullptr, flat, n, c.rms_eps, normed.data());
  ctx.backend.matmul(hc.fn.view, normed.data(), n, m.data());
  std::vector<float> y(static_cast<size_t>(n * c.n_embd)), pre(c.n_hc);
  post.resize(static_cast<size_t>(n * c.n_hc));
  comb.resize(static_cast<size_t>(n * c.n_hc * c.n_hc));
  for (int64_t t = 0; t < n; ++t) {
    hc_split_sinkhorn(&m[static_cast<size_t>(t * mixes)], hc.scale.data(), hc.base.data(), c.n_hc,
                      c.hc_sinkhorn_iters, c.hc_eps, pre.data(),
                      &post[static_cast<size_t>(t * c.n_hc)],
                      &comb[static_cast<size_t>(t * c.n_hc * c.n_hc)]);
    hc_weighted_sum(&x[static_cast<size_t>(t * flat)], pre.data(), c.n_hc, c.n_embd,
                    &y[static_cast<size_t>(t * c.n_embd)]);
  }
  return y;
}

void hc_post_batch(const ForwardContext& ctx, const std::vector<float>& f,
                   const std::vector<float>& post, const std::vector<float>& comb,
                   std::vector<float>& x) {
  const V4Config& c = ctx.config;
  const int64_t flat = int64_t{c.n_hc} * c.n_embd;
  std::vector<float> next(x.size());
  for (int64_t t = 0; t < ctx.batch.size(); ++t) {
    hc_post(&f[static_cast<size_t>(t * c.n_embd)], &x[static_cast<size_t>(t * flat)],
            &post[static_cast<size_t>(t * c.n_hc)], &comb[static_cast<size_t>(t * c.n_hc * c.n_hc)],
            c.n_hc, c.n_embd, &next[static_cast<size_t>(t * flat)]);
  }
  x.swap(next);
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

V4Forward::V4Forward(const V4Weights& weights, Backend& backend)
    : weights_(weights), backend_(backend) {
  plain_rope_.freqs = rope_frequencies(rope_params_for_ratio(weights.config, 0));
  compressed_rope_.freqs = rope_frequencies(rope_params_for_ratio(weights.config, 4));
  stats_.expert_selections.assign(weights.config.n_layer,
                                  std::vector<uint64_t>(weights.config.n_expert, 0));
}

// One block (spec §2): HC_pre → attention → HC_post, HC_pre → MoE → HC_post.
void V4Forward::block_forward(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer,
                              std::vector<float>& x) {
  const V4Config& c = ctx.config;
  const int64_t n = ctx.batch.size();
  std::vector<float> post, comb, f(static_cast<size_t>(n * c.n_embd));
  std::vector<float> y = hc_pre(ctx, w.hc_attn, x, post, comb);
  backend_.rms_norm(y.data(), w.attn_norm.data(), c.n_embd, n, c.rms_eps, y.data());
  attention_forward(ctx, w, layer, w.compress_ratio == 0 ? plain_rope_ : compressed_rope_, y.data(),
                    f.data());
  hc_post_batch(ctx, f, post, comb, x);
  y = hc_pre(ctx, w.hc_ffn, x, post, comb);
  backend_.rms_norm(y.data(), w.ffn_norm.data(), c.n_embd, n, c.rms_eps, y.data());
  // The MTP block (layer n_layer) has no counters.
  uint64_t* selections = layer < c.n_layer ? ctx.stats.expert_selections[layer].data() : nullptr;
  moe_forward(ctx, w, y.data(), f.data(), selections);
  hc_post_batch(ctx, f, post, comb, x);
}

// HC head + output norm + vocabulary projection (spec §3.6) for n HC states.
void V4Forward::head_logits(const float* x, int64_t n, const HcHeadWeights& head,
                            const std::vector<float>& norm, float* logits) {
  const V4Config& c = weights_.config;
  const int64_t flat = int64_t{c.n_hc} * c.n_embd;
  std::vector<float> normed(static_cast<size_t>(n * flat)), m(static_cast<size_t>(n * c.n_hc));
  backend_.rms_norm(x, nullptr, flat, n, c.rms_eps, normed.data());
  backend_.matmul(head.fn.view, normed.data(), n, m.data());
  std::vector<float> z(static_cast<size_t>(n * c.n_embd)), wts(c.n_hc);
  for (int64_t t = 0; t < n; ++t) {
    hc_head_weights(&m[static_cast<size_t>(t * c.n_hc)], head.scale[0], head.base.data(), c.n_hc,
                    c.hc_eps, wts.data());
    hc_weighted_sum(x + t * flat, wts.data(), c.n_hc, c.n_embd,
                    &z[static_cast<size_t>(t * c.n_embd)]);
  }
  backend_.rms_norm(z.data(), norm.data(), c.n_embd, n, c.rms_eps, z.data());
  backend_.matmul(weights_.output.view, z.data(), n, logits);
}

Result<ForwardOutput> V4Forward::forward(std::span<const SequenceInput> inputs) {
  const V4Config& c = weights_.config;
  ForwardBatch b;
  if (Status s = build_batch(c, inputs, b); !s) return s;
  const ForwardContext ctx{c, backend_, b, stats_};
  const int64_t n = b.size(), flat = int64_t{c.n_hc} * c.n_embd;

  // Embedding, copied into every HC stream (spec §3.1).
  std::vector<float> x(static_cast<size_t>(n * flat));
  for (int64_t t = 0; t < n; ++t) {
    float* row = &x[static_cast<size_t>(t * flat)];
    const kernels::MatrixView& e = weights_.token_embd.view;
    kernels::dequantize_row(e.type, e.data + static_cast<size_t>(b.tokens[t]) * e.row_bytes, row,
                            c.n_embd);
    for (uint32_t s = 1; s < c.n_hc; ++s) std::copy_n(row, c.n_embd, row + s * c.n_embd);
  }
  for (uint32_t il = 0; il < c.n_layer; ++il) block_forward(ctx, weights_.layers[il], il, x);

  ForwardOutput out;
  std::vector<int64_t> rows;
  std::vector<bool> keep;
  for (size_t s = 0; s < inputs.size(); ++s) {
    const int64_t begin = b.sequence_begin[s], end = b.sequence_begin[s + 1];
    out.first_row.push_back(rows.size());
    for (int64_t t = inputs[s].all_logits ? begin : std::max(begin, end - 1); t < end; ++t) {
      rows.push_back(t);
      keep.push_back(inputs[s].keep_hidden);
    }
    out.row_count.push_back(rows.size() - out.first_row.back());
    b.states[s]->advance(static_cast<uint64_t>(end - begin));
  }
  std::vector<float> selected(rows.size() * static_cast<size_t>(flat));
  for (size_t r = 0; r < rows.size(); ++r) {
    std::copy_n(&x[static_cast<size_t>(rows[r] * flat)], flat, &selected[r * flat]);
    if (keep[r])
      out.hidden.insert(out.hidden.end(), &selected[r * flat], &selected[(r + 1) * flat]);
  }
  out.logits.resize(rows.size() * c.n_vocab);
  head_logits(selected.data(), static_cast<int64_t>(rows.size()), weights_.output_hc,
              weights_.output_norm, out.logits.data());
  return out;
}

}  // namespace v4
