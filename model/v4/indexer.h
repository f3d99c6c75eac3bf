// Lightning indexer of ratio-4 layers (spec §3.4.4): picks which compressed rows a query token
// attends to when more than indexer_top_k are visible. Keys and queries go through the QAT
// transform (Hadamard rotation, then FP4 round-trip) before scoring.
#pragma once

#include <cstdint>
#include <vector>

#include "model/v4/v4_forward_batch.h"

namespace v4 {

struct LayerWeights;

// Queries of the whole batch, in workspace buffers: q[t][head][dim] (RoPE'd at the token's
// position, QAT-transformed) and head weights w[t][head] = (proj·h) / sqrt(dim·heads).
struct IndexerQueries {
  const float* q = nullptr;
  const float* weights = nullptr;
};

IndexerQueries indexer_queries(const ForwardContext& ctx, const LayerWeights& w, const float* cq,
                               const float* h, const std::vector<float>& freqs);

// Writes to `out` (room for indexer_top_k) the indices, ascending, of the compressed rows token
// `t` of the batch attends to among the first `n_visible`, and returns their count: all of them
// when n_visible <= top_k, else the top_k highest scores S_i = Σ_h w_h·max(0, q_h·K_i) (ties:
// lower index first). `ids` and `scores` are scratch of n_visible values.
uint32_t indexer_select(const ForwardContext& ctx, const IndexerQueries& queries, int64_t t,
                        const KvStateStore& state, uint32_t layer, uint64_t n_visible,
                        uint32_t* ids, float* scores, uint32_t* out);

}  // namespace v4
