#include "model/v4/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/v4/v4_weights.h"

namespace v4 {
namespace {

// Clamped SwiGLU in place on gate: silu(min(g, limit)) · clamp(v, -limit, limit) · scale.
void swiglu(float* gate, const float* up, int64_t n, float limit, float scale) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = std::min(gate[i], limit);
    const float v = std::clamp(up[i], -limit, limit);
    gate[i] = g / (1.0f + std::exp(-g)) * v * scale;
  }
}

// gate/up/down through one expert for `m` gathered rows; `scales` weight each row's activation
// before the down projection (routed experts, spec §3.5), null for the shared expert.
void expert_ffn(Backend& be, const kernels::MatrixView& gate, const kernels::MatrixView& up,
                const kernels::MatrixView& down, const float* x, int64_t m, const float* scales,
                float limit, float* y) {
  const int64_t ff = gate.rows;
  std::vector<float> g(static_cast<size_t>(m * ff)), v(static_cast<size_t>(m * ff));
  be.matmul(gate, x, m, g.data());
  be.matmul(up, x, m, v.data());
  for (int64_t r = 0; r < m; ++r) {
    swiglu(&g[static_cast<size_t>(r * ff)], &v[static_cast<size_t>(r * ff)], ff, limit,
           scales ? scales[r] : 1.0f);
  }
  be.matmul(down, g.data(), m, y);
}

}  // namespace

float sqrt_softplus(float x) {
  const float sp = x > 20.0f ? x : x < -20.0f ? std::exp(x) : std::log1p(std::exp(x));
  return std::sqrt(sp);
}

ExpertChoice select_experts(const V4Config& c, const LayerWeights& w, const float* logits,
                            int32_t token) {
  std::vector<float> p(c.n_expert);
  for (uint32_t e = 0; e < c.n_expert; ++e) p[e] = sqrt_softplus(logits[e]);
  ExpertChoice out;
  if (w.hash_routed()) {
    // The table row of the input token names the experts; p still gives the weights.
    const uint32_t k = std::min(w.tid2eid_width, c.n_expert_used);
    const int32_t* row = &w.tid2eid[static_cast<size_t>(token) * w.tid2eid_width];
    out.experts.assign(row, row + k);
  } else {
    // The bias only orders experts (noaux_tc); ties go to the lower id.
    std::vector<int32_t> ids(c.n_expert);
    std::iota(ids.begin(), ids.end(), 0);
    auto biased = [&](int32_t e) { return p[e] + w.exp_probs_b[static_cast<size_t>(e)]; };
    std::partial_sort(ids.begin(), ids.begin() + c.n_expert_used, ids.end(),
                      [&](int32_t a, int32_t b) {
                        return biased(a) != biased(b) ? biased(a) > biased(b) : a < b;
                      });
    out.experts.assign(ids.begin(), ids.begin() + c.n_expert_used);
  }
  float sum = 0.0f;
  for (int32_t e : out.experts) sum += p[static_cast<size_t>(e)];
  for (int32_t e : out.experts) {
    const float pe = p[static_cast<size_t>(e)];
    out.weights.push_back(c.expert_weights_scale * (c.expert_weights_norm ? pe / sum : pe));
  }
  return out;
}

void moe_forward(const ForwardContext& ctx, const LayerWeights& w, const float* u, float* out,
                 uint64_t* selections) {
  const V4Config& c = ctx.config;
  Backend& be = ctx.backend;
  const int64_t n = ctx.batch.size(), d = c.n_embd;
  std::vector<float> logits(static_cast<size_t>(n * c.n_expert));
  be.matmul(w.router.view, u, n, logits.data());
  std::vector<ExpertChoice> choice(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    choice[static_cast<size_t>(t)] =
        select_experts(c, w, &logits[static_cast<size_t>(t * c.n_expert)],
                       ctx.batch.tokens[static_cast<size_t>(t)]);
  }
  // Group (token, slot) pairs by expert so each expert's weights are read once per step; each
  // pair's output lands in its own slot and slots are summed in selection order, so the result
  // does not depend on which other tokens share the batch.
  const size_t k = choice.empty() ? 0 : choice[0].experts.size();
  std::vector<std::vector<std::pair<int64_t, size_t>>> users(c.n_expert);
  for (int64_t t = 0; t < n; ++t) {
    for (size_t s = 0; s < choice[static_cast<size_t>(t)].experts.size(); ++s) {
      users[static_cast<size_t>(choice[static_cast<size_t>(t)].experts[s])].push_back({t, s});
    }
  }
  if (selections) {
    for (uint32_t e = 0; e < c.n_expert; ++e) selections[e] += users[e].size();
  }
  std::vector<float> routed(static_cast<size_t>(n) * k * d);
  std::vector<float> x, y, scales;
  for (uint32_t e = 0; e < c.n_expert; ++e) {
    const auto& list = users[e];
    if (list.empty()) continue;
    const int64_t m = static_cast<int64_t>(list.size());
    x.resize(static_cast<size_t>(m * d));
    y.resize(static_cast<size_t>(m * d));
    scales.resize(static_cast<size_t>(m));
    for (int64_t r = 0; r < m; ++r) {
      const auto [t, s] = list[static_cast<size_t>(r)];
      std::copy_n(u + t * d, d, &x[static_cast<size_t>(r * d)]);
      scales[static_cast<size_t>(r)] = choice[static_cast<size_t>(t)].weights[s];
    }
    expert_ffn(be, w.gate_exps.matrix(e), w.up_exps.matrix(e), w.down_exps.matrix(e), x.data(), m,
               scales.data(), c.swiglu_limit, y.data());
    for (int64_t r = 0; r < m; ++r) {
      const auto [t, s] = list[static_cast<size_t>(r)];
      std::copy_n(&y[static_cast<size_t>(r * d)], d, &routed[(static_cast<size_t>(t) * k + s) * d]);
    }
  }
  expert_ffn(be, w.gate_shexp.view, w.up_shexp.view, w.down_shexp.view, u, n, nullptr,
             c.swiglu_limit, out);
  for (int64_t t = 0; t < n; ++t) {
    const size_t kt = choice[static_cast<size_t>(t)].experts.size();
    for (int64_t i = 0; i < d; ++i) {
      float acc = 0.0f;
      for (size_t s = 0; s < kt; ++s) acc += routed[(static_cast<size_t>(t) * k + s) * d + i];
      out[t * d + i] += acc;  // Σ routed, then + shared
    }
  }
}

}  // namespace v4
