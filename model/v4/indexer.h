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

// `q` holds q_b·cq and `weights` proj·h (both computed with the layer's other projections of
// their inputs). The queries are rotated and QAT-transformed in place; the weights' scale
// 1/sqrt(dim·heads) is left to indexer_topk.
IndexerQueries indexer_queries(const ForwardContext& ctx, float* q, float* weights,
                               const float* freqs);

}  // namespace v4
