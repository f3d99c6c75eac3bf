#include "model/v4/indexer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/v4/fp4.h"
#include "model/v4/hadamard.h"
#include "model/v4/rope.h"
#include "model/v4/v4_weights.h"

namespace v4 {

void indexer_qat_transform(float* row, int64_t dim) {
  hadamard_transform(row, dim);
  fp4_round_trip(row, dim, 32);
}

IndexerQueries indexer_queries(const ForwardContext& ctx, const LayerWeights& w, const float* cq,
                               const float* h, const std::vector<float>& freqs) {
  const V4Config& c = ctx.config;
  const int64_t n = ctx.batch.size();
  const int64_t heads = c.indexer_n_head, dim = c.indexer_head_dim;
  IndexerQueries out;
  out.q.resize(static_cast<size_t>(n * heads * dim));
  out.weights.resize(static_cast<size_t>(n * heads));
  ctx.backend.matmul(w.indexer.q_b.view, cq, n, out.q.data());
  ctx.backend.matmul(w.indexer.proj.view, h, n, out.weights.data());
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim * heads));
  for (float& x : out.weights) x *= scale;
  ctx.backend.parallel_for(n * heads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* q = &out.q[static_cast<size_t>(i * dim)];
      rope_rotate(q + dim - c.rope_dim, freqs, ctx.batch.positions[static_cast<size_t>(i / heads)],
                  false);
      indexer_qat_transform(q, dim);
    }
  });
  return out;
}

std::vector<uint32_t> indexer_select(const ForwardContext& ctx, const IndexerQueries& queries,
                                     int64_t t, const KvStateStore& state, uint32_t layer,
                                     uint64_t n_visible) {
  const V4Config& c = ctx.config;
  std::vector<uint32_t> all(n_visible);
  std::iota(all.begin(), all.end(), 0u);
  if (n_visible <= c.indexer_top_k) return all;
  const int64_t heads = c.indexer_n_head, dim = c.indexer_head_dim;
  const float* q = &queries.q[static_cast<size_t>(t * heads * dim)];
  const float* wt = &queries.weights[static_cast<size_t>(t * heads)];
  std::vector<float> score(n_visible);
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
  std::partial_sort(
      all.begin(), all.begin() + c.indexer_top_k, all.end(),
      [&](uint32_t a, uint32_t b) { return score[a] != score[b] ? score[a] > score[b] : a < b; });
  all.resize(c.indexer_top_k);
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace v4
