// The pieces of the device's whole-row draw (device_ops_sampling.h) that find where a row's
// cumulative weight, in sampling's rank order, passes a target. The weights are the host draw's
// fixed-point integers (kernels/cpu/draw_weight.h), so every sum here is exact and every order of
// summing finds the same token.
//
// The search is narrowed by bins before it looks at tokens. A bin is a slice of the row's scaled
// logits, a monotone function of the logit alone: a token that ranks before another is never in
// a later bin, and tied logits share one. The bins' masses, summed over the whole row by the
// parts' teams, then tell which bin holds the crossing and the weight ranked before it; only
// that bin's tokens need ranking.
#pragma once

#include <math.h>

#include <cstdint>

#include "kernels/cpu/draw_weight.h"
#include "kernels/device/integer_atomics.h"
#include "model/backend/device/device_ops_top_logits.h"

namespace v4::device {

// Bins of a row's scaled-logit range.
inline constexpr int kDrawBins = 4096;

namespace detail {

// What a part's team leaves for the others: the part's best token and its lowest logit.
struct DrawPart {
  float best_value;  // 0 with best_id -1: every logit of the part is NaN
  int32_t best_id;
  float low;  // +inf with best_id -1
  int32_t unused;
};

// A row's best token and lowest logit, from its parts' (the order is total: any order of
// reduction gives the same best).
struct DrawRange {
  float max = 0.0f;
  int32_t best = -1;  // -1: every logit is NaN
  float low = INFINITY;
};

V4_HD inline DrawRange draw_range(const DrawPart* parts, int64_t n_parts) {
  DrawRange r;
  for (int64_t q = 0; q < n_parts; ++q) {
    const DrawPart& p = parts[q];
    if (better(p.best_value, p.best_id, r.max, r.best)) {
      r.max = p.best_value;
      r.best = p.best_id;
    }
    if (p.low < r.low) r.low = p.low;
  }
  return r;
}

// Bins per unit of logit below the best: kDrawBins over the row's range, or over the range
// beyond which every weight is zero when that is narrower. 0 for a row of equal logits (or a
// range too small to divide by): then every token is in bin 0, which stays correct, only slow.
V4_HD inline float draw_bin_scale(const DrawRange& r, float temperature, float cutoff) {
  float range = r.max - r.low;
  const float reach = -cutoff * temperature;
  if (!(range < reach)) range = reach;
  const float scale = static_cast<float>(kDrawBins) / range;
  return isfinite(scale) ? scale : 0.0f;
}

// The bin of a logit v ≤ max: non-decreasing as v decreases (a subtraction, a product with a
// positive scale and a truncation are each monotone), so rank order visits bins in order. A
// NaN or −inf logit weighs nothing; its bin does not matter.
V4_HD inline int draw_bin(float v, float max, float scale) {
  const float t = (max - v) * scale;
  return t < static_cast<float>(kDrawBins) ? static_cast<int>(t) : kDrawBins - 1;
}

// What one row's draw weighs and bins its tokens with (kernels/cpu/whole_row_draw.cpp's weigh):
// launches 2 and 3 of draw_rows each make it with draw_weigher, so both bin every token alike.
struct DrawWeigher {
  float max;
  float temperature;
  float min_x;  // min-p's lowest scaled logit
  kernels::DrawWeightScale scale;
  float bin_scale;  // draw_bin_scale's

  V4_HD int bin(float v) const { return draw_bin(v, max, bin_scale); }

  V4_HD float scaled(float v) const { return kernels::draw_scaled_logit(v, max, temperature); }
  // The weight of scaled logit x: 0 when it weighs nothing.
  V4_HD uint64_t weight(float x) const { return kernels::draw_weight(x, scale); }
  // Whether min-p keeps scaled logit x.
  V4_HD bool keeps(float x) const { return !(x < min_x); }
  // Token i's weight (logit v) when min-p keeps it, else 0; its rank key into key.
  V4_HD uint64_t kept(float v, int32_t i, uint64_t& key) const {
    const float x = scaled(v);
    const uint64_t w = weight(x);
    if (w == 0 || !keeps(x)) return 0;
    key = kernels::draw_rank_key(v, i);
    return w;
  }
};

V4_HD inline DrawWeigher draw_weigher(const DrawRange& r, const kernels::WholeRowDrawOptions& p,
                                      const kernels::DrawWeightScale& scale) {
  return {r.max, p.temperature, kernels::draw_min_scaled_logit(p.min_p), scale,
          draw_bin_scale(r, p.temperature, scale.cutoff)};
}

// What a row's team keeps between phases of its search (shared memory).
struct DrawState {
  uint64_t prefix;      // the rank key's digits found so far (team_crossing)
  uint64_t before;      // the kept weight ranked before the crossing's token (or its prefix)
  uint64_t found;       // the crossing token's weight
  uint64_t bin_before;  // the kept weight of the bins before the crossing's
  DrawRange range;
  int32_t bin;       // the crossing's bin
  int32_t held_bin;  // the bin whose tokens are held, -1: none
  uint32_t held;     // the held bin's kept tokens (more than the room: not all are held)
  int32_t token;
};

// One team's exact sum over `width` threads of the kDrawDigits integers each left at
// sums[thread·kDrawDigits ..]: a tree, so thread 0's hold the totals afterwards.
inline constexpr int kDrawDigits = 16;  // a radix round takes 4 bits of the rank key

template <class Team>
V4_HD void team_digit_sums(const Team& team, int width, uint64_t* sums) {
  for (int half = width / 2; half > 0; half /= 2) {
    team.threads([&](int l) {
      if (l >= half) return;
      for (int d = 0; d < kDrawDigits; ++d)
        sums[l * kDrawDigits + d] += sums[(l + half) * kDrawDigits + d];
    });
  }
}

// The first kept token in rank order whose cumulative weight passes x, into st->token, and the
// weight before it and its own, st->before and st->found. `kept(i, key)`: candidate i's weight
// (its rank key into key), 0 for none. A most-significant-digit radix search, 4 bits a round, on
// the first `width` threads (a power of two; sums holds kDrawDigits for each): each sums its
// strided candidates that share the digits found so far into 16 integers per next digit, a tree
// adds them up (exact), and thread 0 takes the digit where the sum passes x.
template <class Team, class Kept>
V4_HD void team_crossing(const Team& team, int width, uint64_t x, int64_t n, const Kept& kept,
                         uint64_t* sums, DrawState* st) {
  team.threads([&](int l) {
    if (l != 0) return;
    st->prefix = 0;
    st->before = 0;
  });
  for (int shift = 64 - 4; shift >= 0; shift -= 4) {
    team.threads([&](int l) {
      if (l >= width) return;
      uint64_t* mine = sums + l * kDrawDigits;
      for (int d = 0; d < kDrawDigits; ++d) mine[d] = 0;
      const uint64_t prefix = st->prefix;
      for (int64_t i = l; i < n; i += width) {
        uint64_t key = 0;
        const uint64_t w = kept(i, key);
        if (w == 0 || (shift < 60 && (key >> (shift + 4)) != prefix)) continue;
        mine[(key >> shift) & (kDrawDigits - 1)] += w;
      }
    });
    team_digit_sums(team, width, sums);
    team.threads([&](int l) {
      if (l != 0) return;
      uint64_t before = st->before;
      int digit = 0;
      while (digit + 1 < kDrawDigits && before + sums[digit] <= x) before += sums[digit++];
      st->before = before;
      st->found = sums[digit];
      st->prefix = (st->prefix << 4) | static_cast<uint64_t>(digit);
    });
  }
  team.threads([&](int l) {
    if (l == 0) st->token = static_cast<int32_t>(st->prefix & 0xffffffffu);
  });
}

// The bin whose mass takes the cumulative sum past x, into st->bin, and the mass of the bins
// before it, st->bin_before: each thread sums a run of kDrawBins / team.size() bins into
// runs[thread], then thread 0 walks the runs and the run it stops in.
template <class Team>
V4_HD void team_find_bin(const Team& team, const uint64_t* mass, uint64_t x, uint64_t* runs,
                         DrawState* st) {
  const int size = team.size(), per = kDrawBins / size;
  team.threads([&](int l) {
    uint64_t sum = 0;
    for (int b = l * per; b < (l + 1) * per; ++b) sum += mass[b];
    runs[l] = sum;
  });
  team.threads([&](int l) {
    if (l != 0) return;
    uint64_t before = 0;
    int run = 0;
    while (run + 1 < size && before + runs[run] <= x) before += runs[run++];
    int bin = run * per;
    while (bin + 1 < (run + 1) * per && before + mass[bin] <= x) before += mass[bin++];
    st->bin = bin;
    st->bin_before = before;
  });
}

// team_crossing's result for candidates held in shared memory (keys and weights, m of them),
// all of one bin, x counted from the bin's start: each thread ranks its candidates against all
// the others (m² compares over the team, cheap for the few tokens a bin holds), and the one
// whose cumulative span holds x is the crossing. Exactly one does when x is below their mass.
template <class Team>
V4_HD void team_held_crossing(const Team& team, uint64_t x, uint32_t m, const uint64_t* keys,
                              const uint64_t* weights, DrawState* st) {
  team.threads([&](int l) {
    for (uint32_t q = static_cast<uint32_t>(l); q < m; q += static_cast<uint32_t>(team.size())) {
      const uint64_t key = keys[q];
      uint64_t before = 0;
      for (uint32_t j = 0; j < m; ++j) before += keys[j] < key ? weights[j] : 0;
      if (before <= x && x - before < weights[q]) {
        st->token = static_cast<int32_t>(key & 0xffffffffu);
        st->before = before;
        st->found = weights[q];
      }
    }
  });
}

}  // namespace detail
}  // namespace v4::device
