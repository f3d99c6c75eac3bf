#include "kernels/cpu/compressor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace v4::kernels {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Softmax-weighted sum over `n` candidates given as (value, score) pointers with a stride.
float pool_channel(const float* values, const float* scores, int64_t stride, uint32_t n) {
  float mx = kNegInf;
  for (uint32_t j = 0; j < n; ++j) mx = std::max(mx, scores[j * stride]);
  float den = 0.0f, num = 0.0f;
  for (uint32_t j = 0; j < n; ++j) {
    const float s = scores[j * stride];
    if (s == kNegInf) continue;  // absent candidate (first block's missing predecessor)
    const float e = std::exp(s - mx);
    den += e;
    num += e * values[j * stride];
  }
  return num / den;
}

void reset_rows(CompressorCarry c, uint32_t first, uint32_t count) {
  std::fill_n(c.values + size_t{first} * c.width, size_t{count} * c.width, 0.0f);
  std::fill_n(c.scores + size_t{first} * c.width, size_t{count} * c.width, kNegInf);
}

}  // namespace

bool compressor_push(CompressorCarry c, uint32_t r, const float* ape_rows, const float* a,
                     const float* g, uint64_t pos, float* pooled) {
  const uint32_t in_block = static_cast<uint32_t>(pos % r);
  // Ratio 4: slots 4..7 hold the open block, 0..3 the previous one.
  const uint32_t slot = r == 4 ? 4 + in_block : in_block;
  float* v = c.values + size_t{slot} * c.width;
  float* s = c.scores + size_t{slot} * c.width;
  const float* ape = ape_rows + size_t{in_block} * c.width;
  std::memcpy(v, a, c.width * sizeof(float));
  for (uint32_t d = 0; d < c.width; ++d) s[d] = g[d] + ape[d];
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
    std::memcpy(c.values, c.values + 4 * size_t{c.width}, 4 * size_t{c.width} * sizeof(float));
    std::memcpy(c.scores, c.scores + 4 * size_t{c.width}, 4 * size_t{c.width} * sizeof(float));
    reset_rows(c, 4, 4);
  } else {
    for (uint32_t d = 0; d < c.width; ++d) {
      pooled[d] = pool_channel(c.values + d, c.scores + d, c.width, r);
    }
    reset_rows(c, 0, r);
  }
  return true;
}

}  // namespace v4::kernels
