#include "kernels/cpu/hyper_connections.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace v4::kernels {
namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void normalize_rows(float* c, uint32_t n, float eps) {
  for (uint32_t a = 0; a < n; ++a) {
    float sum = 0.0f;
    for (uint32_t b = 0; b < n; ++b) sum += c[a * n + b];
    for (uint32_t b = 0; b < n; ++b) c[a * n + b] /= sum + eps;
  }
}

void normalize_columns(float* c, uint32_t n, float eps) {
  for (uint32_t b = 0; b < n; ++b) {
    float sum = 0.0f;
    for (uint32_t a = 0; a < n; ++a) sum += c[a * n + b];
    for (uint32_t a = 0; a < n; ++a) c[a * n + b] /= sum + eps;
  }
}

}  // namespace

void hc_split_sinkhorn(const float* m, const float* scale, const float* base, uint32_t n,
                       uint32_t iters, float eps, float* pre, float* post, float* comb) {
  for (uint32_t s = 0; s < n; ++s) {
    pre[s] = sigmoid(m[s] * scale[0] + base[s]) + eps;
    post[s] = 2.0f * sigmoid(m[n + s] * scale[1] + base[n + s]);  // no eps on the post gates
  }
  for (uint32_t a = 0; a < n; ++a) {
    float* row = comb + a * n;
    for (uint32_t b = 0; b < n; ++b)
      row[b] = m[2 * n + a * n + b] * scale[2] + base[2 * n + a * n + b];
    const float mx = *std::max_element(row, row + n);
    float sum = 0.0f;
    for (uint32_t b = 0; b < n; ++b) sum += (row[b] = std::exp(row[b] - mx));
    for (uint32_t b = 0; b < n; ++b) row[b] = row[b] / sum + eps;
  }
  // Sinkhorn: the first iteration's row step is the softmax above.
  normalize_columns(comb, n, eps);
  for (uint32_t it = 1; it < iters; ++it) {
    normalize_rows(comb, n, eps);
    normalize_columns(comb, n, eps);
  }
}

void hc_weighted_sum(const float* x, const float* w, uint32_t n, int64_t d, float* y) {
  for (int64_t i = 0; i < d; ++i) {
    float acc = 0.0f;
    for (uint32_t s = 0; s < n; ++s) acc += w[s] * x[s * d + i];
    y[i] = acc;
  }
}

void hc_post(const float* f, const float* x, const float* post, const float* comb, uint32_t n,
             int64_t d, float* x_out) {
  for (uint32_t b = 0; b < n; ++b) {
    float* out = x_out + b * d;
    for (int64_t i = 0; i < d; ++i) {
      float acc = post[b] * f[i];
      for (uint32_t a = 0; a < n; ++a) acc += comb[a * n + b] * x[a * d + i];
      out[i] = acc;
    }
  }
}

void hc_head_weights(const float* m, float scale0, const float* base, uint32_t n, float eps,
                     float* w) {
  for (uint32_t s = 0; s < n; ++s) w[s] = sigmoid(m[s] * scale0 + base[s]) + eps;
}

void rms_normalize(const float* x, int64_t n, float eps, float* out) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * r;
}

}  // namespace v4::kernels
