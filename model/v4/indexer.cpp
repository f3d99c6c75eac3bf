#include "model/v4/indexer.h"

#include <cmath>

#include "model/v4/rope.h"

namespace v4 {

IndexerQueries indexer_queries(const ForwardContext& ctx, float* q, float* weights,
                               const float* freqs) {
  const V4Config& c = ctx.config;
  const int64_t n = ctx.size();
  const int64_t heads = c.indexer_n_head, dim = c.indexer_head_dim;
  HeadTransform t;
  t.rope_dim = c.rope_dim;
  t.positions = ctx.positions();
  t.freqs = freqs;
  t.qat = true;
  ctx.backend.transform_heads(q, n, heads, dim, t);
  return {q, weights, 1.0f / std::sqrt(static_cast<float>(dim * heads))};
}

}  // namespace v4
