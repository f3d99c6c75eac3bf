#include "model/v4/indexer.h"

#include <cmath>

#include "model/v4/rope.h"
#include "model/v4/v4_weights.h"

namespace v4 {

IndexerQueries indexer_queries(const ForwardContext& ctx, const LayerWeights& w, const float* cq,
                               float* weights, const float* freqs) {
  const V4Config& c = ctx.config;
  const int64_t n = ctx.size();
  const int64_t heads = c.indexer_n_head, dim = c.indexer_head_dim;
  float* q = ctx.ws.idx_q.data<float>();
  ctx.backend.matmul(w.indexer.q_b.view, cq, n, q);
  ctx.backend.scale(weights, n * heads, 1.0f / std::sqrt(static_cast<float>(dim * heads)));
  ctx.backend.rope(q, n, heads, dim, dim - c.rope_dim, c.rope_dim, ctx.positions(), freqs, false);
  ctx.backend.indexer_qat(q, n * heads, dim);
  return {q, weights};
}

}  // namespace v4
