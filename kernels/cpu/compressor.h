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

// Pooled columns of a compressor: ratio 4 pools channel d of the previous block with channel
// width/2 + d of the open one, so a column is that pair (width/2 columns); ratio 128 pools each
// channel on its own (width columns).
V4_HD inline uint32_t compressor_columns(uint32_t ratio, uint32_t width) {
  return ratio == 4 ? width / 2 : width;
}

// Column d of compressor_push (see compressor_columns): stores the token's values and scores of
// the column's channels and, when the token completes the block, writes the column's pooled
// value to *pooled and moves the column's carry on. Columns are independent, so a GPU thread per
// column computes what compressor_push does.
V4_HD inline bool compressor_push_column(CompressorCarry c, uint32_t r, const float* ape_rows,
                                         const float* a, const float* g, uint64_t pos, uint32_t d,
                                         float* pooled) {
  const uint32_t in_block = static_cast<uint32_t>(pos % r);
  // Ratio 4: slots 4..7 hold the open block, 0..3 the previous one.
  const uint32_t slot = r == 4 ? 4 + in_block : in_block;
  const uint32_t head = c.width / 2;
  const uint32_t channels[2] = {d, head + d};
  const int n_channels = r == 4 ? 2 : 1;
  const float* ape = ape_rows + size_t{in_block} * c.width;
  for (int k = 0; k < n_channels; ++k) {
    const uint32_t ch = channels[k];
    c.values[size_t{slot} * c.width + ch] = a[ch];
    c.scores[size_t{slot} * c.width + ch] = g[ch] + ape[ch];
  }
  if (in_block != r - 1) return false;
  if (r == 4) {
    // Candidates: channel d of the previous block, then channel head + d of this block
    // (reference overlap_transform order).
    float vals[8], scores[8];
    for (uint32_t j = 0; j < 4; ++j) {
      vals[j] = c.values[size_t{j} * c.width + d];
      scores[j] = c.scores[size_t{j} * c.width + d];
      vals[4 + j] = c.values[size_t{4 + j} * c.width + head + d];
      scores[4 + j] = c.scores[size_t{4 + j} * c.width + head + d];
    }
    *pooled = pool_channel(vals, scores, 1, 8);
    for (int k = 0; k < 2; ++k) {
      for (uint32_t j = 0; j < 4; ++j) {
        const size_t from = size_t{4 + j} * c.width + channels[k],
                     to = size_t{j} * c.width + channels[k];
        c.values[to] = c.values[from];
        c.scores[to] = c.scores[from];
        c.values[from] = 0.0f;
        c.scores[from] = -INFINITY;
      }
    }
  } else {
    *pooled = pool_channel(c.values + d, c.scores + d, c.width, r);
    for (uint32_t j = 0; j < r; ++j) {
      c.values[size_t{j} * c.width + d] = 0.0f;
      c.scores[size_t{j} * c.width + d] = -INFINITY;
    }
  }
  return true;
}

// Feeds one token's projections a = W_kv·h and g = W_gate·h (width floats each); `ape` is the
// [ratio][width] score bias, row pos mod ratio of which is added to g. When the token completes
// block i = (pos+1)/ratio - 1 the pooled row (width floats for ratio 128, width/2 for ratio 4)
// is written to `pooled` and true is returned; the carry then moves on to the next block.
V4_HD inline bool compressor_push(CompressorCarry c, uint32_t r, const float* ape_rows,
                                  const float* a, const float* g, uint64_t pos, float* pooled) {
  bool done = false;
  for (uint32_t d = 0; d < compressor_columns(r, c.width); ++d) {
    done = compressor_push_column(c, r, ape_rows, a, g, pos, d, pooled + d);
  }
  return done;
}

}  // namespace v4::kernels
