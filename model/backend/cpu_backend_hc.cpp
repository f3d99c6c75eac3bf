// CpuBackend's hyper-connection ops (spec §3.2, §3.3, §3.6) over the per-token kernels of
// kernels/cpu/hyper_connections.
#include "kernels/cpu/hyper_connections.h"
#include "model/backend/cpu_backend.h"

namespace v4 {

// The mixes shared by HC_pre and the HC head: fn · RMSNorm(flat x) into hc_mixes_ ([n][fn rows]),
// with hc_pre_weights_ sized for n_hc weights per token.
void CpuBackend::hc_mix(const HcMixing& hc, const float* x, int64_t n) {
  const int64_t flat = int64_t{hc.n_hc} * hc.n_embd;
  const size_t nn = static_cast<size_t>(n);
  if (hc_normed_.size() < nn * flat) hc_normed_.resize(nn * flat);
  if (hc_mixes_.size() < nn * hc.fn->rows) hc_mixes_.resize(nn * hc.fn->rows);
  if (hc_pre_weights_.size() < nn * hc.n_hc) hc_pre_weights_.resize(nn * hc.n_hc);
  rms_norm(x, nullptr, flat, n, hc.rms_eps, hc_normed_.data());
  matmul(*hc.fn, hc_normed_.data(), n, hc_mixes_.data());
}

void CpuBackend::hc_pre(const HcMixing& hc, const float* x, int64_t n, float* y, float* post,
                        float* comb) {
  const int64_t flat = int64_t{hc.n_hc} * hc.n_embd, mixes = hc.fn->rows;
  hc_mix(hc, x, n);
  const uint32_t h = hc.n_hc;
  run(n, n * flat * 2, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      float* pre = &hc_pre_weights_[static_cast<size_t>(t) * h];
      kernels::hc_split_sinkhorn(&hc_mixes_[static_cast<size_t>(t * mixes)], hc.scale, hc.base, h,
                                 hc.sinkhorn_iters, hc.eps, pre, post + t * h, comb + t * h * h);
      kernels::hc_weighted_sum(x + t * flat, pre, h, hc.n_embd, y + t * hc.n_embd);
    }
  });
  if (hc.out_norm) rms_norm(y, hc.out_norm, hc.n_embd, n, hc.rms_eps, y);
}

void CpuBackend::hc_post(const float* f, const float* f_added, const float* x, const float* post,
                         const float* comb, int64_t n, uint32_t n_hc, int64_t n_embd,
                         float* x_out) {
  const int64_t flat = int64_t{n_hc} * n_embd;
  run(n, n * flat * (n_hc + 1), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float *ft = f + t * n_embd, *at = f_added ? f_added + t * n_embd : nullptr;
      const float *xt = x + t * flat, *pt = post + t * n_hc, *ct = comb + t * n_hc * n_hc;
      for (uint32_t b = 0; b < n_hc; ++b) {
        for (int64_t i = 0; i < n_embd; ++i) {
          const float f_i = at ? ft[i] + at[i] : ft[i];
          x_out[t * flat + b * n_embd + i] =
              kernels::hc_post_element(f_i, xt, pt, ct, n_hc, n_embd, b, i);
        }
      }
    }
  });
}

void CpuBackend::hc_head(const HcMixing& hc, const float* x, int64_t n, float* z) {
  const int64_t flat = int64_t{hc.n_hc} * hc.n_embd;
  hc_mix(hc, x, n);
  const uint32_t h = hc.n_hc;
  run(n, n * flat, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      float* w = &hc_pre_weights_[static_cast<size_t>(t) * h];
      kernels::hc_head_weights(&hc_mixes_[static_cast<size_t>(t) * h], hc.scale[0], hc.base, h,
                               hc.eps, w);
      kernels::hc_weighted_sum(x + t * flat, w, h, hc.n_embd, z + t * hc.n_embd);
    }
  });
  if (hc.out_norm) rms_norm(z, hc.out_norm, hc.n_embd, n, hc.rms_eps, z);
}

}  // namespace v4
