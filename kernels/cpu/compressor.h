// Streaming KV compressors (spec §3.4.3): ratio 128 pools each block of 128 tokens; ratio 4 pools
// overlapping windows of 8 tokens (the previous block's first halves and the current block's
// second halves). Both pool per channel with a softmax over the tokens' gate scores.
#pragma once

#include <cstdint>

namespace v4::kernels {

// A compressor's carry state: `rows` slots of `width` values and scores. Ratio 4: 8 slots
// (0..3 the previous block, 4..7 the open one); ratio 128: 128 slots. A fresh carry holds zero
// values and −∞ scores.
struct CompressorCarry {
  float* values = nullptr;
  float* scores = nullptr;
  uint32_t rows = 0;
  uint32_t width = 0;
};

// Feeds one token's projections a = W_kv·h and g = W_gate·h (width floats each); `ape` is the
// [ratio][width] score bias, row pos mod ratio of which is added to g. When the token completes
// block i = (pos+1)/ratio - 1 the pooled row (width floats for ratio 128, width/2 for ratio 4)
// is written to `pooled` and true is returned; the carry then moves on to the next block.
bool compressor_push(CompressorCarry carry, uint32_t ratio, const float* ape, const float* a,
                     const float* g, uint64_t pos, float* pooled);

}  // namespace v4::kernels
