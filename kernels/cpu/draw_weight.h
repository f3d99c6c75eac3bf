// The arithmetic of sampling from a whole row (kernels/cpu/whole_row_draw.h): each token's
// share of the draw, exp((logit − max)/T), as a fixed-point integer. The cumulative sums the draw
// walks are then exact, so every order of summing them — a sort, the host's radix search, a
// device team's tree of per-thread sums — finds the same token, and finding it never needs the
// row sorted. Everything here is shared by the host draw and the device op.
#pragma once

#include <math.h>

#include <cstdint>
#include <cstring>

#include "core/hd.h"

namespace v4::kernels {

// A whole-row draw's filters.
struct WholeRowDrawOptions {
  float temperature = 1.0f;  // > 0
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
};

// What a backend's draw of one row (Backend::draw_rows) takes: the request's filters and the
// draw's 53 random bits (model/sampling/sampling.h's counter_bits53 for its token index).
// filters.temperature ≤ 0 (the default): the row is not drawn.
struct RowDrawParams {
  WholeRowDrawOptions filters{0.0f, 1.0f, 0.0f};
  uint32_t unused = 0;
  uint64_t bits53 = 0;
};

// Fraction bits of a row's weights: each weight is at most 1 (the best token's is exactly 1), so
// n of them sum to less than 2^62 and a sum never overflows.
V4_HD inline int draw_weight_bits(int64_t n) {
  int width = 0;
  for (auto v = static_cast<uint64_t>(n); v != 0; v >>= 1) ++width;
  return 62 - width;
}

// Below this scaled logit, exp is under 2^-(bits+1)/e: the weight rounds to zero whatever the
// last bit of exp, so it need not be computed.
V4_HD inline float draw_weight_cutoff(int bits) {
  return -0.693147182f * static_cast<float>(bits + 1) - 1.0f;
}

// The weights' unit for a row of n tokens: scale = 2^draw_weight_bits(n), and its cutoff.
struct DrawWeightScale {
  double scale;
  float cutoff;
};

V4_HD inline DrawWeightScale draw_weight_scale(int64_t n) {
  const int bits = draw_weight_bits(n);
  return {ldexp(1.0, bits), draw_weight_cutoff(bits)};
}

// (logit − max)/T: what the filters compare (min-p keeps x ≥ log(min_p), the best token's
// weight times min_p) and what the weight is the exponential of.
V4_HD inline float draw_scaled_logit(float logit, float max, float temperature) {
  return (logit - max) / temperature;
}

// exp(x) in units of 2^-bits (s.scale = 2^bits), rounded to nearest; 0 below the cutoff and
// for NaN (a NaN logit never ranks, so it is never drawn).
V4_HD inline uint64_t draw_weight(float x, const DrawWeightScale& s) {
  if (!(x >= s.cutoff)) return 0;
  return static_cast<uint64_t>(static_cast<double>(expf(x)) * s.scale + 0.5);
}

// The lowest scaled logit min-p keeps: p_i ≥ min_p·p_best ⇔ (logit_i − max)/T ≥ log(min_p);
// −inf with min-p off.
V4_HD inline float draw_min_scaled_logit(float min_p) {
  return min_p > 0.0f ? logf(min_p) : -INFINITY;
}

// The mass top-p's prefix must reach, of a row whose drawable tokens weigh row_mass: at least
// one, so that a top-p at or below 0 keeps the best token alone.
V4_HD inline uint64_t draw_top_p_reach(float top_p, uint64_t row_mass) {
  const double target = ceil(static_cast<double>(top_p) * static_cast<double>(row_mass));
  return target < 1.0 ? 1 : static_cast<uint64_t>(target);
}

// A key whose ascending order is sampling's order (kernels/cpu/token_candidates.h: logit
// descending, lower id first) for a logit that is not NaN: the logit's bits mapped to an
// unsigned order, inverted, above the id. −0 and +0 tie, as they compare equal.
V4_HD inline uint64_t draw_rank_key(float logit, int32_t id) {
  uint32_t bits;
  const float v = logit == 0.0f ? 0.0f : logit;
  memcpy(&bits, &v, sizeof bits);
  const uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (static_cast<uint64_t>(~ascending) << 32) | static_cast<uint32_t>(id);
}

// floor(u · total) for the draw's u = bits53 · 2^-53 in [0, 1): exact, below total.
V4_HD inline uint64_t draw_threshold(uint64_t bits53, uint64_t total) {
#if defined(__CUDA_ARCH__)
  const uint64_t lo = bits53 * total, hi = __umul64hi(bits53, total);
  return (hi << 11) | (lo >> 53);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(bits53) * total) >> 53);
#endif
}

}  // namespace v4::kernels
