// The device ops' hyper-connections (spec §3.2, §3.3, §3.6): the mixes fn · RMSNorm(flat X)
// through the device RMSNorm and matmul, then the CPU's per-token functions
// (kernels/cpu/hyper_connections.h) — the Sinkhorn split a token per index, the weighted sums
// and HC_post an element per index, each in the CPU's summation order.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "kernels/cpu/hyper_connections.h"
#include "model/backend/device/device_ops.h"
#include "model/backend/device/device_ops_elementwise.h"

namespace v4::device {

// Hyper-connection streams the device ops hold in thread-local memory (V4: 4).
inline constexpr uint32_t kMaxHc = 8;

// fn · RMSNorm(x) for n tokens into scratch ([n][fn rows]); returns the mixes.
template <class E>
float* hc_mixes(E& e, DeviceScratch<E>& s, const HcMixing& hc, const float* x, int64_t n) {
  const int64_t flat = int64_t{hc.n_hc} * hc.n_embd;
  float* normed = s.template get<float>(ScratchSlot::kElementwise, static_cast<size_t>(n * flat));
  float* mixes =
      s.template get<float>(ScratchSlot::kElementwiseAux, static_cast<size_t>(n * hc.fn->rows));
  rms_norm(e, s, x, nullptr, flat, n, hc.rms_eps, normed);
  matmul(e, s, *hc.fn, normed, flat, n, mixes, hc.fn->rows);
  return mixes;
}

template <class E>
void hc_pre(E& e, DeviceScratch<E>& s, const HcMixing& hc, const float* x, int64_t n_tokens,
            float* y, float* post, float* comb) {
  if (n_tokens <= 0) return;
  const float* mixes = hc_mixes(e, s, hc, x, n_tokens);
  const uint32_t h = hc.n_hc;
  const int64_t d = hc.n_embd, rows = hc.fn->rows;
  float* pre =
      s.template get<float>(ScratchSlot::kAttentionAux2, static_cast<size_t>(n_tokens) * h);
  const float *scale = hc.scale, *base = hc.base;
  const uint32_t iters = hc.sinkhorn_iters;
  const float eps = hc.eps;
  if (h > kMaxHc) {
    std::fprintf(stderr, "hc_pre: %u streams exceed the device limit %u\n", h, kMaxHc);
    std::abort();
  }
  // The Sinkhorn iterations read what the previous one wrote: in thread-local memory, not global.
  e.for_each(n_tokens, [=] V4_HD(int64_t t) {
    float m[2 * kMaxHc + kMaxHc * kMaxHc], p[kMaxHc], q[kMaxHc], c[kMaxHc * kMaxHc];
    for (int64_t j = 0; j < rows; ++j) m[j] = mixes[t * rows + j];
    kernels::hc_split_sinkhorn(m, scale, base, h, iters, eps, p, q, c);
    for (uint32_t j = 0; j < h; ++j) {
      pre[t * h + j] = p[j];
      post[t * h + j] = q[j];
    }
    for (uint32_t j = 0; j < h * h; ++j) comb[t * h * h + j] = c[j];
  });
  e.for_each(n_tokens * d, [=] V4_HD(int64_t i) {
    const int64_t t = i / d;
    y[i] = kernels::hc_weighted_value(x + t * h * d, pre + t * h, h, d, i % d);
  });
}

template <class E>
void hc_post(E& e, DeviceScratch<E>& s, const float* f, const float* x, const float* post,
             const float* comb, int64_t n_tokens, uint32_t n_hc, int64_t n_embd, float* x_out) {
  const int64_t flat = int64_t{n_hc} * n_embd;
  e.for_each(n_tokens * flat, [=] V4_HD(int64_t i) {
    const int64_t t = i / flat, b = (i % flat) / n_embd, j = i % n_embd;
    x_out[i] =
        kernels::hc_post_value(f + t * n_embd, x + t * flat, post + t * n_hc,
                               comb + t * n_hc * n_hc, n_hc, n_embd, static_cast<uint32_t>(b), j);
  });
}

template <class E>
void hc_head(E& e, DeviceScratch<E>& s, const HcMixing& hc, const float* x, int64_t n_tokens,
             float* z) {
  if (n_tokens <= 0) return;
  const float* mixes = hc_mixes(e, s, hc, x, n_tokens);
  const uint32_t h = hc.n_hc;
  const int64_t d = hc.n_embd;
  float* w = s.template get<float>(ScratchSlot::kAttentionAux2, static_cast<size_t>(n_tokens) * h);
  const float* base = hc.base;
  const float* scale = hc.scale;
  const float eps = hc.eps;
  e.for_each(n_tokens, [=] V4_HD(int64_t t) {
    kernels::hc_head_weights(mixes + t * h, scale[0], base, h, eps, w + t * h);
  });
  e.for_each(n_tokens * d, [=] V4_HD(int64_t i) {
    const int64_t t = i / d;
    z[i] = kernels::hc_weighted_value(x + t * h * d, w + t * h, h, d, i % d);
  });
}

}  // namespace v4::device
