// Hyper-connection (mHC) math for one token (spec §3.2, §3.3, §3.6). The residual state X is n_hc
// streams of n_embd values, stream-major (flat[s·n_embd + d]).
#pragma once

#include <cstdint>

namespace v4::kernels {

// Splits the 2n+n² mixes m (= hc_fn · RMS-normalised flat X) into pre weights, post gates and the
// Sinkhorn-normalised n×n combine matrix comb[a·n + b] (a = source stream, b = destination):
//   pre_s = sigmoid(m_s·scale0 + base_s) + eps; post_s = 2·sigmoid(m_{n+s}·scale1 + base_{n+s});
//   comb = row softmax + eps, column normalise, then (iters-1)× (row, column) normalisations.
void hc_split_sinkhorn(const float* mixes, const float* scale, const float* base, uint32_t n_hc,
                       uint32_t iters, float eps, float* pre, float* post, float* comb);

// y = Σ_s w_s·X_s (the sub-layer input of HC_pre and the HC head's output).
void hc_weighted_sum(const float* x, const float* weights, uint32_t n_hc, int64_t n_embd, float* y);

// X'_b = post_b·f + Σ_a comb[a][b]·X_a; `x_out` must not alias `x`.
void hc_post(const float* f, const float* x, const float* post, const float* comb, uint32_t n_hc,
             int64_t n_embd, float* x_out);

// HC head weights (spec §3.6): w_s = sigmoid(m_s·scale0 + base_s) + eps.
void hc_head_weights(const float* mixes, float scale0, const float* base, uint32_t n_hc, float eps,
                     float* weights);

// x̂ = x / sqrt(mean(x²) + eps) without a weight, sum of squares in double.
void rms_normalize(const float* x, int64_t n, float eps, float* out);

}  // namespace v4::kernels
