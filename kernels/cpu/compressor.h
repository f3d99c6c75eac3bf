// Streaming KV compressors (spec §3.4.3): ratio 128 pools each block of 128 tokens; ratio 4 pools
// overlapping windows of 8 tokens (the previous block's first halves and the current block's
// second halves). Both pool per channel with a softmax over the tokens' gate scores. Shared by
// host and device code (V4_HD).
#pragma once

#include <math.h>

#include <cstdint>

#include "core/hd.h"

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

// Softmax-weighted sum over `n` candidates given as (value, score) pointers with a stride.
V4_HD inline float pool_channel(const float* values, const float* scores, int64_t stride,
                                uint32_t n) {
  float mx = -INFINITY;
  for (uint32_t j = 0; j < n; ++j) mx = fmaxf(mx, scores[j * stride]);
  float den = 0.0f, num = 0.0f;
  for (uint32_t j = 0; j < n; ++j) {
    const float s = scores[j * stride];
    if (s == -INFINITY) continue;  // absent candidate (first block's missing predecessor)
    const float e = expf(s - mx);
    den += e;
    num += e * values[j * stride];
  }
  return num / den;
}

V4_HD inline void compressor_reset_rows(CompressorCarry c, uint32_t first, uint32_t count) {
  for (size_t i = size_t{first} * c.width; i < size_t{first + count} * c.width; ++i) {
    c.values[i] = 0.0f;
    c.scores[i] = -INFINITY;
  }
}

// Feeds one token's projections a = W_kv·h and g = W_gate·h (width floats each); `ape` is the
// [ratio][width] score bias, row pos mod ratio of which is added to g. When the token completes
// block i = (pos+1)/ratio - 1 the pooled row (width floats for ratio 128, width/2 for ratio 4)
// is written to `pooled` and true is returned; the carry then moves on to the next block.
V4_HD inline bool compressor_push(CompressorCarry c, uint32_t r, const float* ape_rows,
                                  const float* a, const float* g, uint64_t pos, float* pooled) {
  const uint32_t in_block = static_cast<uint32_t>(pos % r);
  // Ratio 4: slots 4..7 hold the open block, 0..3 the previous one.
  const uint32_t slot = r == 4 ? 4 + in_block : in_block;
  float* v = c.values + size_t{slot} * c.width;
  float* s = c.scores + size_t{slot} * c.width;
  const float* ape = ape_rows + size_t{in_block} * c.width;
  for (uint32_t d = 0; d < c.width; ++d) {
    v[d] = a[d];
    s[d] = g[d] + ape[d];
  }
  if (in_block != r - 1) return false;

  if (r == 4) {
    // Candidates per channel d: A halves (d) of the previous block, then B halves (head + d)
    // of this block (reference overlap_transform order).
    const uint32_t head = c.width / 2;
    for (uint32_t d = 0; d < head; ++d) {
      float vals[8], scores[8];
      for (uint32_t j = 0; j < 4; ++j) {
        vals[j] = c.values[size_t{j} * c.width + d];
        scores[j] = c.scores[size_t{j} * c.width + d];
        vals[4 + j] = c.values[size_t{4 + j} * c.width + head + d];
        scores[4 + j] = c.scores[size_t{4 + j} * c.width + head + d];
      }
      pooled[d] = pool_channel(vals, scores, 1, 8);
    }
    for (size_t i = 0; i < 4 * size_t{c.width}; ++i) {
      c.values[i] = c.values[i + 4 * size_t{c.width}];
      c.scores[i] = c.scores[i + 4 * size_t{c.width}];
    }
    compressor_reset_rows(c, 4, 4);
  } else {
    for (uint32_t d = 0; d < c.width; ++d) {
      pooled[d] = pool_channel(c.values + d, c.scores + d, c.width, r);
    }
    compressor_reset_rows(c, 0, r);
  }
  return true;
}

}  // namespace v4::kernels
