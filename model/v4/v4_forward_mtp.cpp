// The MTP (next-next-token) block of spec §3.7, run on top of V4Forward's block and head code.
#include <algorithm>

#include "model/v4/v4_forward.h"

namespace v4 {

Result<std::vector<float>> V4Forward::mtp_draft(KvStateStore& state, std::span<const float> hidden,
                                                int32_t token, std::vector<float>* hidden_out,
                                                bool want_logits) {
  const V4Config& c = weights_.config;
  if (!weights_.mtp) return Status::error("the model has no MTP block");
  const MtpWeights& m = *weights_.mtp;
  const int64_t d = c.n_embd, flat = int64_t{c.n_hc} * d;
  if (static_cast<int64_t>(hidden.size()) != flat) {
    return Status::error("MTP hidden state has " + std::to_string(hidden.size()) +
                         " values, expected " + std::to_string(flat));
  }
  if (token < 0 || static_cast<uint32_t>(token) >= c.n_vocab) {
    return Status::error("MTP token id " + std::to_string(token) + " outside the vocabulary");
  }
  if (Status s = state.reserve(1); !s) return s;
  if (state.layout().layers.size() <= c.n_layer) {
    return Status::error("the MTP state has no slot for the MTP block");
  }

  ForwardBatch& b = batch_;
  b.clear();
  b.tokens = {token};
  b.positions = {state.n_past()};
  b.sequence_of = {0};
  b.states = {&state};
  b.sequence_begin = {0, 1};
  ws_.ensure(c, 1);
  // The step's copies in: the token, its position and KV addresses, and the hidden state.
  if (Status s = copy_step_inputs(); !s) return s;
  float* h = ws_.selected.data<float>();
  if (Status s = backend_.copy_to_device(hidden.data(), ws_.selected, 0,
                                         static_cast<size_t>(flat) * sizeof(float));
      !s) {
    return s;
  }

  // ê = RMSNorm(embedding; enorm); per stream h_s = RMSNorm(H_s; hnorm).
  float* e = ws_.y.data<float>();
  backend_.embed(weights_.token_embd.view, ws_.tokens.data<int32_t>(), 1, 1, e);
  backend_.rms_norm(e, m.enorm.device(), d, 1, c.rms_eps, e);
  float* hn = ws_.next.data<float>();
  backend_.rms_norm(h, m.hnorm.device(), d, c.n_hc, c.rms_eps, hn);

  // X_s = e_proj·ê + h_proj·h_s (llama.cpp files: eh_proj·[ê | h_s]).
  float* xs = ws_.x.data<float>();
  if (m.eh_proj.present()) {
    float* cat = ws_.mtp_cat.data<float>();
    const size_t row_bytes = static_cast<size_t>(d) * sizeof(float);
    for (uint32_t s = 0; s < c.n_hc; ++s) {
      backend_.copy_on_device(e, cat + s * 2 * d, row_bytes);
      backend_.copy_on_device(hn + s * d, cat + s * 2 * d + d, row_bytes);
    }
    backend_.matmul(m.eh_proj.view, cat, c.n_hc, xs);
  } else {
    float* pe = ws_.f.data<float>();
    backend_.matmul(m.e_proj.view, e, 1, pe);
    backend_.matmul(m.h_proj.view, hn, c.n_hc, xs);
    for (uint32_t s = 0; s < c.n_hc; ++s) backend_.add(pe, d, xs + s * d);
  }

  const ForwardContext ctx{c, backend_, experts_, ws_, b, stats_, state.layout(), kv_step_};
  float* next = ws_.next.data<float>();
  block_forward(ctx, m.block, c.n_layer, xs, next);
  state.advance(1);
  if (hidden_out) {
    // block_forward swaps its two buffers an even number of times: xs is ws_.x again.
    const Tensor& out = xs == ws_.x.data<float>() ? ws_.x : ws_.next;
    hidden_out->resize(static_cast<size_t>(flat));
    if (Status s = backend_.copy_to_host(out, 0, hidden_out->data(),
                                         static_cast<size_t>(flat) * sizeof(float));
        !s) {
      return s;
    }
  }
  if (!want_logits) return std::vector<float>();
  head_logits(xs, 1, m.hc_head, m.norm, ws_.logits.data<float>());
  std::vector<float> logits(c.n_vocab);
  if (Status s = backend_.copy_to_host(ws_.logits, 0, logits.data(), c.n_vocab * sizeof(float));
      !s) {
    return s;
  }
  return logits;
}

}  // namespace v4
