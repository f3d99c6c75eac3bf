// The MTP (next-next-token) block of spec §3.7, run on top of V4Forward's block and head code.
#include <algorithm>

#include "model/v4/v4_forward.h"

namespace v4 {

Result<std::vector<float>> V4Forward::mtp_draft(KvStateStore& state, std::span<const float> hidden,
                                                int32_t token) {
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

  // ê = RMSNorm(embedding; enorm); per stream h_s = RMSNorm(H_s; hnorm).
  std::vector<float> e(static_cast<size_t>(d)), hn(static_cast<size_t>(flat));
  backend_.embed(weights_.token_embd.view, &token, 1, 1, e.data());
  backend_.rms_norm(e.data(), m.enorm.data(), d, 1, c.rms_eps, e.data());
  backend_.rms_norm(hidden.data(), m.hnorm.data(), d, c.n_hc, c.rms_eps, hn.data());

  // X_s = e_proj·ê + h_proj·h_s (llama.cpp files: eh_proj·[ê | h_s]).
  std::vector<float> x(static_cast<size_t>(flat));
  if (m.eh_proj.present()) {
    std::vector<float> cat(static_cast<size_t>(c.n_hc * 2 * d));
    for (uint32_t s = 0; s < c.n_hc; ++s) {
      std::copy_n(e.data(), d, &cat[s * 2 * d]);
      std::copy_n(&hn[s * d], d, &cat[s * 2 * d + d]);
    }
    backend_.matmul(m.eh_proj.view, cat.data(), c.n_hc, x.data());
  } else {
    std::vector<float> pe(static_cast<size_t>(d));
    backend_.matmul(m.e_proj.view, e.data(), 1, pe.data());
    backend_.matmul(m.h_proj.view, hn.data(), c.n_hc, x.data());
    for (uint32_t s = 0; s < c.n_hc; ++s) backend_.add(pe.data(), d, x.data() + s * d);
  }

  ForwardBatch& b = batch_;
  b.clear();
  b.tokens = {token};
  b.positions = {state.n_past()};
  b.sequence_of = {0};
  b.states = {&state};
  b.sequence_begin = {0, 1};
  ws_.ensure(c, 1);
  if (state.layout().layers.size() <= c.n_layer) {
    return Status::error("the MTP state has no slot for the MTP block");
  }
  // The block works on device tensors: x goes in, the head's logits come out.
  float* xs = ws_.x.data<float>();
  float* next = ws_.next.data<float>();
  if (Status s = backend_.copy_to_device(x.data(), ws_.x, 0, x.size() * sizeof(float)); !s) {
    return s;
  }
  if (Status s = copy_step_inputs(); !s) return s;
  const ForwardContext ctx{c, backend_, experts_, ws_, b, stats_, state.layout(), kv_step_};
  block_forward(ctx, m.block, c.n_layer, xs, next);
  state.advance(1);
  head_logits(xs, 1, m.hc_head, m.norm, ws_.logits.data<float>());
  std::vector<float> logits(c.n_vocab);
  if (Status s = backend_.copy_to_host(ws_.logits, 0, logits.data(), c.n_vocab * sizeof(float));
      !s) {
    return s;
  }
  return logits;
}

}  // namespace v4
