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

V4Forward::V4Forward(const V4Weights& weights, Backend& backend, ExpertDispatcher* experts)
    : weights_(weights),
      backend_(backend),
      local_experts_(experts ? nullptr : std::make_unique<LocalExpertDispatcher>(backend)),
      experts_(experts ? *experts : *local_experts_) {
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
  const size_t nn = static_cast<size_t>(n);
  std::vector<float> post(nn * c.n_hc), comb(nn * c.n_hc * c.n_hc), y(nn * c.n_embd),
      f(nn * c.n_embd), next(x.size());
  backend_.hc_pre(hc_mixing(c, w.hc_attn.fn, w.hc_attn.scale, w.hc_attn.base), x.data(), n,
                  y.data(), post.data(), comb.data());
  backend_.rms_norm(y.data(), w.attn_norm.data(), c.n_embd, n, c.rms_eps, y.data());
  attention_forward(ctx, w, layer, w.compress_ratio == 0 ? plain_rope_ : compressed_rope_, y.data(),
                    f.data());
  backend_.hc_post(f.data(), x.data(), post.data(), comb.data(), n, c.n_hc, c.n_embd, next.data());
  x.swap(next);
  backend_.hc_pre(hc_mixing(c, w.hc_ffn.fn, w.hc_ffn.scale, w.hc_ffn.base), x.data(), n, y.data(),
                  post.data(), comb.data());
  backend_.rms_norm(y.data(), w.ffn_norm.data(), c.n_embd, n, c.rms_eps, y.data());
  // The MTP block (layer n_layer) has no counters.
  uint64_t* selections = layer < c.n_layer ? ctx.stats.expert_selections[layer].data() : nullptr;
  moe_forward(ctx, w, layer, y.data(), f.data(), selections);
  backend_.hc_post(f.data(), x.data(), post.data(), comb.data(), n, c.n_hc, c.n_embd, next.data());
  x.swap(next);
}

// HC head + output norm + vocabulary projection (spec §3.6) for n HC states.
void V4Forward::head_logits(const float* x, int64_t n, const HcHeadWeights& head,
                            const std::vector<float>& norm, float* logits) {
  const V4Config& c = weights_.config;
  std::vector<float> z(static_cast<size_t>(n * c.n_embd));
  backend_.hc_head(hc_mixing(c, head.fn, head.scale, head.base), x, n, z.data());
  backend_.rms_norm(z.data(), norm.data(), c.n_embd, n, c.rms_eps, z.data());
  backend_.matmul(weights_.output.view, z.data(), n, logits);
}

Result<ForwardOutput> V4Forward::forward(std::span<const SequenceInput> inputs) {
  const V4Config& c = weights_.config;
  ForwardBatch b;
  if (Status s = build_batch(c, inputs, b); !s) return s;
  const ForwardContext ctx{c, backend_, experts_, b, stats_};
  const int64_t n = b.size(), flat = int64_t{c.n_hc} * c.n_embd;

  // Embedding, copied into every HC stream (spec §3.1).
  std::vector<float> x(static_cast<size_t>(n * flat));
  backend_.embed(weights_.token_embd.view, b.tokens.data(), n, c.n_hc, x.data());
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
  backend_.gather_rows(x.data(), flat, rows.data(), static_cast<int64_t>(rows.size()),
                       selected.data());
  for (size_t r = 0; r < rows.size(); ++r) {
    if (keep[r])
      out.hidden.insert(out.hidden.end(), &selected[r * flat], &selected[(r + 1) * flat]);
  }
  out.logits.resize(rows.size() * c.n_vocab);
  head_logits(selected.data(), static_cast<int64_t>(rows.size()), weights_.output_hc,
              weights_.output_norm, out.logits.data());
  return out;
}

}  // namespace v4
