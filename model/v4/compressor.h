// Streaming KV compressors (spec §3.4.3): ratio 128 pools each block of 128 tokens; ratio 4 pools
// overlapping windows of 8 tokens (the previous block's first halves and the current block's
// second halves). Both pool per channel with a softmax over the tokens' gate scores.
#pragma once

#include <cstdint>
#include <vector>

#include "model/v4/sequence_state.h"

namespace v4 {

struct CompressorWeights;

// Feeds one token's projections a = W_kv·h and g = W_gate·h (width floats each; the ape bias of
// row pos mod ratio is added here). When the token completes block i = (pos+1)/ratio - 1 the
// pooled row (head = width for ratio 128, width/2 for ratio 4 floats) is written to `pooled` and
// true is returned; the carry state then moves on to the next block.
bool compressor_push(const CompressorWeights& w, CompressorCarry carry, const float* a,
                     const float* g, uint64_t pos, float* pooled);

}  // namespace v4
