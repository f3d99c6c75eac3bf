// Lightning indexer of ratio-4 layers (spec §3.4.4): picks which compressed rows a query token
// attends to when more than indexer_top_k are visible. Queries go through the QAT transform
// (Hadamard rotation, then FP4 round-trip) before the backend's indexer_topk scores them
// against the keys the compressor wrote.
#pragma once

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

// `weights` holds proj·h (computed with the layer's other projections of h) and is scaled in
// place.
IndexerQueries indexer_queries(const ForwardContext& ctx, const LayerWeights& w, const float* cq,
                               float* weights, const float* freqs);

}  // namespace v4
