// The device ops' hyper-connections (spec §3.2, §3.3, §3.6): the mixes fn · RMSNorm(flat X) as
// the reference computes them, fn · flat X through the device matmul times the row's RMS scale,
// then the CPU's per-token functions
// (kernels/cpu/hyper_connections.h) — the Sinkhorn and the weighted sum a team (GPU block) per
// token, the Sinkhorn's elements over the threads, HC_post an element per index — each value in
// the CPU's summation order. The team that writes a token's output row also norms it when asked
// (HcMixing::out_norm), as the device RMSNorm would in a launch of its own.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "kernels/cpu/hyper_connections.h"
#include "model/backend/device/device_ops.h"
#include "model/backend/device/device_ops_elementwise.h"

namespace v4::device {

// Hyper-connection streams the device ops hold in thread-local memory (V4: 4).
inline constexpr uint32_t kMaxHc = 8;

// fn · flat X for n tokens into scratch ([n][fn rows]), not yet scaled: the team that uses the
// mixes multiplies them by the RMS scale of flat X (hc_scaled_mix), in the reference's order
// (spec §3.2 step 2: fn·flat(X) times the rsqrt), so no launch writes the normed streams. fn's
// rows are long (n_hc·n_embd values: several chunks), and that team adds each one's chunks
// itself, in the matmul's order: two launches fewer than a norm, a product and a reduction.
template <class E>
UnreducedRows hc_mixes(E& e, DeviceScratch<E>& s, const HcMixing& hc, const float* x, int64_t n) {
  const kernels::MatrixView& fn = *hc.fn;
  float* out =
      s.template get<float>(ScratchSlot::kElementwiseAux, static_cast<size_t>(n * fn.rows));
  return matmul_unreduced(e, s, fn, x, n, out);
}

// Mix k of token t: its unscaled sum times the RMS scale of the token's flat X.
V4_HD inline float hc_scaled_mix(const UnreducedRows& mixes, int64_t t, int64_t k, float rms) {
  return mixes.at(t, k) * rms;
}

// Threads of the team that finishes a token's hyper-connection (the Sinkhorn uses h² of them,
// the weighted sum all).
inline constexpr int kHcTeam = 256;
static_assert(kHcTeam >= kNormLanes);

// c_out = c_in with each row (by_rows) or column divided by its sum + eps: thread k owns element
// k = a·h + b and sums its row or column from zero in the CPU's order (hc_normalize_rows /
// hc_normalize_columns), so every element is the CPU's bit for bit.
V4_HD inline void hc_normalize_element(const float* c_in, float* c_out, uint32_t h, float eps,
                                       bool by_rows, uint32_t k) {
  const uint32_t a = k / h, b = k % h;
  float sum = 0.0f;
  for (uint32_t j = 0; j < h; ++j) sum += by_rows ? c_in[a * h + j] : c_in[j * h + b];
  c_out[k] = c_in[k] / (sum + eps);
}

// Pre weight u from the mixes m, as the CPU's hc_split_sinkhorn gives it.
V4_HD inline float hc_pre_weight(const float* m, const float* scale, const float* base, uint32_t u,
                                 float eps) {
  return kernels::hc_sigmoid(m[u] * scale[0] + base[u]) + eps;
}

// The CPU's hc_split_sinkhorn (kernels/cpu/hyper_connections.h) over a team: the gates a thread
// per stream, the combine matrix a thread per element, one phase per row or column step (read one
// buffer, write the other). `sm` holds 2n + n² mixes then three n² buffers; returns the buffer
// with the result. The mixes are token t's of `mixes`, scaled by `rms` (hc_scaled_mix).
template <class Team>
V4_HD float* hc_sinkhorn_team(const Team& team, const UnreducedRows& mixes, int64_t t, float rms,
                              const float* scale, const float* base, uint32_t h, uint32_t iters,
                              float eps, float* pre, float* post, float* sm) {
  const uint32_t rows = 2 * h + h * h, hh = h * h;
  float *m = sm, *c = sm + rows, *other = c + hh, *ex = other + hh;
  team.threads([&](int k) {
    if (k < static_cast<int>(rows)) m[k] = hc_scaled_mix(mixes, t, k, rms);
  });
  team.threads([&](int k) {
    const uint32_t u = static_cast<uint32_t>(k);
    if (u < h) {
      pre[u] = hc_pre_weight(m, scale, base, u, eps);
      post[u] = 2.0f * kernels::hc_sigmoid(m[h + u] * scale[1] + base[h + u]);
    }
    if (u < hh) c[u] = m[2 * h + u] * scale[2] + base[2 * h + u];
  });
  team.threads([&](int k) {  // the row softmax's exponentials
    const uint32_t u = static_cast<uint32_t>(k);
    if (u >= hh) return;
    const float* row = c + (u / h) * h;
    float mx = row[0];
    for (uint32_t b = 1; b < h; ++b) mx = row[b] > mx ? row[b] : mx;
    ex[u] = expf(c[u] - mx);
  });
  team.threads([&](int k) {
    const uint32_t u = static_cast<uint32_t>(k);
    if (u >= hh) return;
    const float* row = ex + (u / h) * h;
    float sum = 0.0f;
    for (uint32_t b = 0; b < h; ++b) sum += row[b];
    c[u] = ex[u] / sum + eps;
  });
  // Sinkhorn: the first iteration's row step is the softmax above.
  for (uint32_t step = 1; step < 2 * iters; ++step) {
    const bool by_rows = step % 2 == 0;
    team.threads([&](int k) {
      if (k < static_cast<int>(hh))
        hc_normalize_element(c, other, h, eps, by_rows, static_cast<uint32_t>(k));
    });
    float* t = c;
    c = other;
    other = t;
  }
  return c;
}

// Shared memory of an HC team: the RMS sums of its flat X (rms_scale_team; those of the out_norm
// RMSNorm reuse them at the end, rms_norm_team), then `own` bytes.
inline constexpr size_t kHcRmsBytes = kNormLanes * sizeof(double);
inline size_t hc_team_shared(size_t own) { return kHcRmsBytes + own; }

// The RMS scale of token t's flat X (n values), summed as the device RMSNorm sums (spec §3.2
// step 1), in the first kHcRmsBytes of the team's shared memory.
template <class Team>
V4_HD float hc_rms_team(const Team& team, const float* x, int64_t n, float eps) {
  return rms_scale_team(team, x, n, eps, team.template shared<double>());
}

// The team's shared memory past the RMS sums.
template <class T, class Team>
V4_HD T* hc_team_own(const Team& team) {
  return reinterpret_cast<T*>(team.template shared<double>() + kNormLanes);
}

template <class E>
void hc_pre(E& e, DeviceScratch<E>& s, const HcMixing& hc, const float* x, int64_t n_tokens,
            float* y, float* post, float* comb) {
  if (n_tokens <= 0) return;
  const UnreducedRows mixes = hc_mixes(e, s, hc, x, n_tokens);
  const uint32_t h = hc.n_hc;
  const int64_t d = hc.n_embd, rows = hc.fn->rows;
  const float *scale = hc.scale, *base = hc.base;
  const uint32_t iters = hc.sinkhorn_iters;
  const float eps = hc.eps;
  if (h > kMaxHc) {
    std::fprintf(stderr, "hc_pre: %u streams exceed the device limit %u\n", h, kMaxHc);
    std::abort();
  }
  const float* out_norm = hc.out_norm;
  const float rms_eps = hc.rms_eps;
  // Two teams per token, which a GPU runs side by side: the first n_tokens run the Sinkhorn in
  // shared memory (post and comb, which only HC_post reads), the next n_tokens the pre weights,
  // y = Σ_s pre_s·X_s an element per thread, then (out_norm) the row's RMSNorm. Each sums the
  // RMS scale of the token's flat X itself (the same bits), so the weighted sum no longer waits
  // on the Sinkhorn's 40 phases: a decode step's lone token runs the two at once.
  const size_t shared = hc_team_shared((rows + 3 * h * h + h) * sizeof(float));
  e.for_each_team(2 * n_tokens, kHcTeam, shared,
                  [=] V4_HD(int64_t i, const typename E::Team& team) {
                    const int64_t t = i % n_tokens;
                    const float rms = hc_rms_team(team, x + t * h * d, h * d, rms_eps);
                    float* sm = hc_team_own<float>(team);
                    if (i < n_tokens) {
                      float* unused_pre = sm + rows + 3 * h * h;
                      const float* c = hc_sinkhorn_team(team, mixes, t, rms, scale, base, h, iters,
                                                        eps, unused_pre, post + t * h, sm);
                      team.threads([&](int k) {
                        if (k < static_cast<int>(h * h)) comb[t * h * h + k] = c[k];
                      });
                      return;
                    }
                    float *m = sm, *pre = sm + h;
                    team.threads([&](int k) {  // pre weight k reads only mix k, its own
                      if (k >= static_cast<int>(h)) return;
                      m[k] = hc_scaled_mix(mixes, t, k, rms);
                      pre[k] = hc_pre_weight(m, scale, base, static_cast<uint32_t>(k), eps);
                    });
                    team.threads([&](int k) {
                      for (int64_t j = k; j < d; j += team.size()) {
                        y[t * d + j] = kernels::hc_weighted_value(x + t * h * d, pre, h, d, j);
                      }
                    });
                    if (out_norm) rms_norm_team(team, y + t * d, out_norm, d, rms_eps, y + t * d);
                  });
}

template <class E>
void hc_post(E& e, DeviceScratch<E>& s, const float* f, const float* f_added, const float* x,
             const float* post, const float* comb, int64_t n_tokens, uint32_t n_hc, int64_t n_embd,
             float* x_out) {
  const int64_t flat = int64_t{n_hc} * n_embd;
  e.for_each(n_tokens * flat, [=] V4_HD(int64_t i) {
    const int64_t t = i / flat, b = (i % flat) / n_embd, j = i % n_embd;
    const int64_t at = t * n_embd + j;
    const float f_j = f_added ? f[at] + f_added[at] : f[at];
    x_out[i] = kernels::hc_post_element(f_j, x + t * flat, post + t * n_hc, comb + t * n_hc * n_hc,
                                        n_hc, n_embd, static_cast<uint32_t>(b), j);
  });
}

template <class E>
void hc_head(E& e, DeviceScratch<E>& s, const HcMixing& hc, const float* x, int64_t n_tokens,
             float* z) {
  if (n_tokens <= 0) return;
  const UnreducedRows mixes = hc_mixes(e, s, hc, x, n_tokens);
  const uint32_t h = hc.n_hc;
  const int64_t d = hc.n_embd;
  const float* base = hc.base;
  const float* scale = hc.scale;
  const float eps = hc.eps;
  const float* out_norm = hc.out_norm;
  const float rms_eps = hc.rms_eps;
  // A team per token: the RMS scale of its flat X, its mixes, its weights (one thread), then
  // z = Σ_s w_s·X_s an element per thread, then (out_norm) the row's RMSNorm.
  e.for_each_team(n_tokens, kHcTeam, hc_team_shared(2 * h * sizeof(float)),
                  [=] V4_HD(int64_t t, const typename E::Team& team) {
                    const float rms = hc_rms_team(team, x + t * h * d, h * d, rms_eps);
                    float* w = hc_team_own<float>(team);
                    float* m = w + h;
                    team.threads([&](int k) {
                      if (k < static_cast<int>(h)) m[k] = hc_scaled_mix(mixes, t, k, rms);
                    });
                    team.threads([&](int k) {
                      if (k == 0) kernels::hc_head_weights(m, scale[0], base, h, eps, w);
                    });
                    team.threads([&](int k) {
                      for (int64_t i = k; i < d; i += team.size()) {
                        z[t * d + i] = kernels::hc_weighted_value(x + t * h * d, w, h, d, i);
                      }
                    });
                    if (out_norm) rms_norm_team(team, z + t * d, out_norm, d, rms_eps, z + t * d);
                  });
}

}  // namespace v4::device
