// Lightning indexer of ratio-4 layers (spec §3.4.4): picks which compressed rows a query token
// attends to when more than indexer_top_k are visible. Queries go through the QAT transform
// (Hadamard rotation, then FP4 round-trip) before the backend's indexer_topk scores them
// against the keys the compressor wrote.
#pragma once

#include <vector>

#include "model/v4/v4_forward_batch.h"

namespace v4 {

// Queries of the whole batch, in workspace buffers: q[t][head][dim] (RoPE'd at the token's
// position, QAT-transformed) and head weights w[t][head] = (proj·h)[t][head] · weight_scale, the
// scale being 1/sqrt(dim·heads).
struct IndexerQueries {
  const float* q = nullptr;
  const float* weights = nullptr;
  float weight_scale = 1.0f;  // what indexer_topk multiplies each of `weights` by
};

// The transform of the queries `q` (q_b·cq, computed with the layer's other products of cq):
// RoPE at the token's position, then QAT, in place, for Backend::transform_heads (which runs it
// beside the layer's q and kv rows).
HeadRows indexer_query_rows(const ForwardContext& ctx, float* q, const float* freqs);

// `q` transformed by indexer_query_rows, `weights` proj·h (computed with the layer's other
// projections of h). The weights' scale 1/sqrt(dim·heads) is left to indexer_topk.
IndexerQueries indexer_queries(const ForwardContext& ctx, const float* q, const float* weights);

}  // namespace v4
