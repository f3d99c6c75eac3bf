#include "model/v4/indexer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/v4/rope.h"
#include "model/v4/v4_weights.h"

namespace v4 {

IndexerQueries indexer_queries(const ForwardContext& ctx, const LayerWeights& w, const float* cq,
                               const float* h, const std::vector<float>& freqs) {
  const V4Config& c = ctx.config;
  const int64_t n = ctx.batch.size();
  const int64_t heads = c.indexer_n_head, dim = c.indexer_head_dim;
  float* q = ctx.ws.idx_q.data<float>();
  float* weights = ctx.ws.idx_w.data<float>();
  ctx.backend.matmul(w.indexer.q_b.view, cq, n, q);
  ctx.backend.matmul(w.indexer.proj.view, h, n, weights);
  ctx.backend.scale(weights, n * heads, 1.0f / std::sqrt(static_cast<float>(dim * heads)));
  ctx.backend.rope(q, n, heads, dim, dim - c.rope_dim, c.rope_dim,
                   ctx.ws.positions.data<uint64_t>(), freqs.data(), false);
  ctx.backend.indexer_qat(q, n * heads, dim);
  return {q, weights};
}

uint32_t indexer_select(const ForwardContext& ctx, const IndexerQueries& queries, int64_t t,
                        const KvStateStore& state, uint32_t layer, uint64_t n_visible,
                        uint32_t* all, float* score, uint32_t* out) {
  const V4Config& c = ctx.config;
  if (n_visible <= c.indexer_top_k) {
    std::iota(out, out + n_visible, 0u);
    return static_cast<uint32_t>(n_visible);
  }
  std::iota(all, all + n_visible, 0u);
  const int64_t heads = c.indexer_n_head, dim = c.indexer_head_dim;
  const float* q = queries.q + t * heads * dim;
  const float* wt = queries.weights + t * heads;
  for (uint64_t i = 0; i < n_visible; ++i) {
    const float* k = state.indexer_key(layer, i);
    float s = 0.0f;
    for (int64_t hd = 0; hd < heads; ++hd) {
      float dot = 0.0f;
      for (int64_t d = 0; d < dim; ++d) dot += q[hd * dim + d] * k[d];
      s += wt[hd] * std::max(0.0f, dot);
    }
    score[i] = s;
  }
  std::partial_sort(all, all + c.indexer_top_k, all + n_visible, [&](uint32_t a, uint32_t b) {
    return score[a] != score[b] ? score[a] > score[b] : a < b;
  });
  std::sort(all, all + c.indexer_top_k);
  std::copy_n(all, c.indexer_top_k, out);
  return c.indexer_top_k;
}

}  // namespace v4
