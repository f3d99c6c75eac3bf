// Hyper-connection (mHC) math for one token (spec §3.2, §3.3, §3.6). The residual state X is n_hc
// streams of n_embd values, stream-major (flat[s·n_embd + d]). Shared by host and device code
// (V4_HD): the device ops call these per token or per element.
#pragma once

#include <math.h>

#include <cstdint>

#include "core/hd.h"

namespace v4::kernels {

V4_HD inline float hc_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

V4_HD inline void hc_normalize_rows(float* c, uint32_t n, float eps) {
  for (uint32_t a = 0; a < n; ++a) {
    float sum = 0.0f;
    for (uint32_t b = 0; b < n; ++b) sum += c[a * n + b];
    for (uint32_t b = 0; b < n; ++b) c[a * n + b] /= sum + eps;
  }
}

V4_HD inline void hc_normalize_columns(float* c, uint32_t n, float eps) {
  for (uint32_t b = 0; b < n; ++b) {
    float sum = 0.0f;
    for (uint32_t a = 0; a < n; ++a) sum += c[a * n + b];
    for (uint32_t a = 0; a < n; ++a) c[a * n + b] /= sum + eps;
  }
}

// Splits the 2n+n² mixes m (= hc_fn · RMS-normalised flat X) into pre weights, post gates and the
// Sinkhorn-normalised n×n combine matrix comb[a·n + b] (a = source stream, b = destination):
//   pre_s = sigmoid(m_s·scale0 + base_s) + eps; post_s = 2·sigmoid(m_{n+s}·scale1 + base_{n+s});
//   comb = row softmax + eps, column normalise, then (iters-1)× (row, column) normalisations.
V4_HD inline void hc_split_sinkhorn(const float* m, const float* scale, const float* base,
                                    uint32_t n, uint32_t iters, float eps, float* pre, float* post,
                                    float* comb) {
  for (uint32_t s = 0; s < n; ++s) {
    pre[s] = hc_sigmoid(m[s] * scale[0] + base[s]) + eps;
    post[s] = 2.0f * hc_sigmoid(m[n + s] * scale[1] + base[n + s]);  // no eps on the post gates
  }
  for (uint32_t a = 0; a < n; ++a) {
    float* row = comb + a * n;
    for (uint32_t b = 0; b < n; ++b)
      row[b] = m[2 * n + a * n + b] * scale[2] + base[2 * n + a * n + b];
    float mx = row[0];
    for (uint32_t b = 1; b < n; ++b) mx = row[b] > mx ? row[b] : mx;
    float sum = 0.0f;
    for (uint32_t b = 0; b < n; ++b) sum += (row[b] = expf(row[b] - mx));
    for (uint32_t b = 0; b < n; ++b) row[b] = row[b] / sum + eps;
  }
  // Sinkhorn: the first iteration's row step is the softmax above.
  hc_normalize_columns(comb, n, eps);
  for (uint32_t it = 1; it < iters; ++it) {
    hc_normalize_rows(comb, n, eps);
    hc_normalize_columns(comb, n, eps);
  }
}

// Element i of y = Σ_s w_s·X_s (the sub-layer input of HC_pre and the HC head's output).
V4_HD inline float hc_weighted_value(const float* x, const float* w, uint32_t n, int64_t d,
                                     int64_t i) {
  float acc = 0.0f;
  for (uint32_t s = 0; s < n; ++s) acc += w[s] * x[s * d + i];
  return acc;
}

V4_HD inline void hc_weighted_sum(const float* x, const float* w, uint32_t n, int64_t d, float* y) {
  for (int64_t i = 0; i < d; ++i) y[i] = hc_weighted_value(x, w, n, d, i);
}

// Element i of stream b of X'_b = post_b·f + Σ_a comb[a][b]·X_a, given f's element i.
V4_HD inline float hc_post_element(float f_i, const float* x, const float* post, const float* comb,
                                   uint32_t n, int64_t d, uint32_t b, int64_t i) {
  float acc = post[b] * f_i;
  for (uint32_t a = 0; a < n; ++a) acc += comb[a * n + b] * x[a * d + i];
  return acc;
}

V4_HD inline float hc_post_value(const float* f, const float* x, const float* post,
                                 const float* comb, uint32_t n, int64_t d, uint32_t b, int64_t i) {
  return hc_post_element(f[i], x, post, comb, n, d, b, i);
}

// X'_b for every stream; `x_out` must not alias `x`.
V4_HD inline void hc_post(const float* f, const float* x, const float* post, const float* comb,
                          uint32_t n, int64_t d, float* x_out) {
  for (uint32_t b = 0; b < n; ++b) {
    for (int64_t i = 0; i < d; ++i) x_out[b * d + i] = hc_post_value(f, x, post, comb, n, d, b, i);
  }
}

// HC head weights (spec §3.6): w_s = sigmoid(m_s·scale0 + base_s) + eps.
V4_HD inline void hc_head_weights(const float* m, float scale0, const float* base, uint32_t n,
                                  float eps, float* w) {
  for (uint32_t s = 0; s < n; ++s) w[s] = hc_sigmoid(m[s] * scale0 + base[s]) + eps;
}

// x̂ = x / sqrt(mean(x²) + eps) without a weight, sum of squares in double.
V4_HD inline void rms_normalize(const float* x, int64_t n, float eps, float* out) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float r = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * r;
}

}  // namespace v4::kernels
