#include "model/v4/indexer.h"

#include <cmath>

#include "model/v4/rope.h"

namespace v4 {

HeadRows indexer_query_rows(const ForwardContext& ctx, float* q, const float* freqs) {
  const V4Config& c = ctx.config;
  HeadTransform t;
  t.rope_dim = c.rope_dim;
  t.positions = ctx.positions();
  t.freqs = freqs;
  t.qat = true;
  return {q, int64_t{c.indexer_n_head}, int64_t{c.indexer_head_dim}, t};
}

IndexerQueries indexer_queries(const ForwardContext& ctx, const float* q, const float* weights) {
  const V4Config& c = ctx.config;
  const auto dim_heads = static_cast<float>(int64_t{c.indexer_head_dim} * c.indexer_n_head);
  return {q, weights, 1.0f / std::sqrt(dim_heads)};
}

}  // namespace v4
