// The MTP (next-next-token) block of spec §3.7, run on top of V4Forward's block and head code.
#include <algorithm>

#include "model/v4/v4_forward.h"

namespace v4 {

Result<std::vector<float>> V4Forward::mtp_draft(KvStateStore& state, std::span<const float> hidden,
                                                int32_t token, std::vector<float>* hidden_out,
                                                bool want_logits) {
  return mtp_forward(state, hidden, std::span<const int32_t>(&token, 1), hidden_out, want_logits);
}

Result<std::vector<float>> V4Forward::mtp_forward(KvStateStore& state,
                                                  std::span<const float> hidden,
                                                  std::span<const int32_t> tokens,
                                                  std::vector<float>* hidden_out,
                                                  bool want_logits) {
  const V4Config& c = weights_.config;
  if (!weights_.mtp) return Status::error("the model has no MTP block");
  const MtpWeights& m = *weights_.mtp;
  const int64_t d = c.n_embd, flat = int64_t{c.n_hc} * d;
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n < 1 || n > kMtpMaxRows) {
    return Status::error("MTP forward takes 1 to " + std::to_string(kMtpMaxRows) + " pairs, got " +
                         std::to_string(n));
  }
  if (static_cast<int64_t>(hidden.size()) != n * flat) {
    return Status::error("MTP hidden states have " + std::to_string(hidden.size()) +
                         " values, expected " + std::to_string(n * flat));
  }
  for (int32_t token : tokens) {
    if (token < 0 || static_cast<uint32_t>(token) >= c.n_vocab) {
      return Status::error("MTP token id " + std::to_string(token) + " outside the vocabulary");
    }
  }
  if (Status s = state.reserve(static_cast<uint64_t>(n)); !s) return s;
  if (state.layout().layers.size() <= c.n_layer) {
    return Status::error("the MTP state has no slot for the MTP block");
  }

  ForwardBatch& b = batch_;
  b.clear();
  b.tokens.assign(tokens.begin(), tokens.end());
  b.positions.resize(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) b.positions[static_cast<size_t>(t)] = state.n_past() + t;
  b.sequence_of.assign(static_cast<size_t>(n), 0);
  b.states = {&state};
  b.sequence_begin = {0, n};
  ws_.ensure(c, n);
  // The step's copies in: the tokens, their positions and KV addresses, and the hidden states.
  if (Status s = copy_step_inputs(); !s) return s;
  count_indexer_drops(m.block.compress_ratio == 4 ? 1 : 0);
  float* h = ws_.selected.data<float>();
  if (Status s = backend_.copy_to_device(hidden.data(), ws_.selected, 0,
                                         static_cast<size_t>(n * flat) * sizeof(float));
      !s) {
    return s;
  }

  // ê = RMSNorm(embedding; enorm); per stream h_s = RMSNorm(H_s; hnorm).
  float* e = ws_.y.data<float>();
  backend_.embed(weights_.token_embd.view, ws_.tokens.data<int32_t>(), n, 1, e);
  backend_.rms_norm(e, m.enorm.device(), d, n, c.rms_eps, e);
  float* hn = ws_.next.data<float>();
  backend_.rms_norm(h, m.hnorm.device(), d, n * c.n_hc, c.rms_eps, hn);

  // X_s = e_proj·ê + h_proj·h_s (llama.cpp files: eh_proj·[ê | h_s]).
  float* xs = ws_.x.data<float>();
  if (m.eh_proj.present()) {
    float* cat = ws_.mtp_cat.data<float>();
    const size_t row_bytes = static_cast<size_t>(d) * sizeof(float);
    for (int64_t t = 0; t < n; ++t) {
      for (uint32_t s = 0; s < c.n_hc; ++s) {
        float* row = cat + (t * c.n_hc + s) * 2 * d;
        backend_.copy_on_device(e + t * d, row, row_bytes);
        backend_.copy_on_device(hn + (t * c.n_hc + s) * d, row + d, row_bytes);
      }
    }
    backend_.matmul(m.eh_proj.view, cat, n * c.n_hc, xs);
  } else {
    float* pe = ws_.f.data<float>();
    backend_.matmul(m.e_proj.view, e, n, pe);
    backend_.matmul(m.h_proj.view, hn, n * c.n_hc, xs);
    for (int64_t t = 0; t < n; ++t) {
      for (uint32_t s = 0; s < c.n_hc; ++s) backend_.add(pe + t * d, d, xs + (t * c.n_hc + s) * d);
    }
  }

  const ForwardContext ctx{c, backend_, experts_, ws_, b, stats_, state.layout(), kv_step_};
  float* next = ws_.next.data<float>();
  block_forward(ctx, m.block, c.n_layer, xs, next);
  state.advance(static_cast<uint64_t>(n));
  const float* last = xs + (n - 1) * flat;
  if (hidden_out) {
    // block_forward swaps its two buffers an even number of times: xs is ws_.x again.
    const Tensor& out = xs == ws_.x.data<float>() ? ws_.x : ws_.next;
    hidden_out->resize(static_cast<size_t>(flat));
    if (Status s =
            backend_.copy_to_host(out, static_cast<size_t>((n - 1) * flat) * sizeof(float),
                                  hidden_out->data(), static_cast<size_t>(flat) * sizeof(float));
        !s) {
      return s;
    }
  }
  if (!want_logits) return std::vector<float>();
  head_logits(last, 1, m.hc_head, m.norm, ws_.logits.data<float>());
  std::vector<float> logits(c.n_vocab);
  if (Status s = backend_.copy_to_host(ws_.logits, 0, logits.data(), c.n_vocab * sizeof(float));
      !s) {
    return s;
  }
  return logits;
}

}  // namespace v4
