// The device op that draws a row's token on the device (Backend::draw_rows), so that a request
// sampling without a top-k sends back 8 bytes, not its row. It is the host's whole-row draw
// (kernels/cpu/whole_row_draw.h) on the GPU: the fixed-point weights' sums are integers, so any
// order of summing them finds the token the host's search finds, with no sort.
//
// Three launches, so that no team reads a whole row of 129280 logits more than twice:
//   1. a team per (row, part of kTopLogitsPart logits): the part's best token and lowest logit
//      (as top_logits finds a best, device_ops_top_logits.h), and its share of zeroing the row's
//      totals;
//   2. a team per (row, part): its tokens' weights, summed into the row's masses and, per bin of
//      the scaled logits (device_ops_draw_search.h), into the row's bin masses. Integer atomic
//      adds: the same totals in any order;
//   3. a team per row: the bin where the cumulative weight passes the draw's target (top-p's
//      first, then the draw's), that bin's tokens gathered into shared memory (one pass over
//      the row), and the crossing among them. A bin with more tokens than that room holds is
//      searched by a radix search over the row restricted to it, which is slow but exact.
// A row's work depends on its logits and filters only, never on the other rows.
#pragma once

#include <math.h>

#include <algorithm>

#include "kernels/cpu/draw_weight.h"
#include "kernels/device/integer_atomics.h"
#include "model/backend/device/device_ops.h"
#include "model/backend/device/device_ops_draw_search.h"
#include "model/backend/device/device_ops_top_logits.h"

namespace v4::device {

// Threads of the draw's row team (launch 3).
inline constexpr int kDrawRowTeam = 512;
// Kept tokens of one bin the row team holds in shared memory.
inline constexpr uint32_t kDrawHeld = 1024;
// A row's totals in scratch: the bins' kept masses, then its whole mass and its kept mass.
inline constexpr int64_t kDrawTotals = kDrawBins + 2;

namespace detail {

// Launch 1's team over part `part` of row `row` (its n logits at x, the first being token
// `first`): the part's best and lowest into *out.
template <class Team>
V4_HD void draw_part_range(const Team& team, const float* x, int64_t n, int64_t first,
                           float* best_value, int32_t* best_id, float* low, DrawPart* out) {
  team_best_after(
      team, n, true, 0.0f, -1, best_value, best_id, [x](int64_t q) { return x[q]; },
      [first](int64_t q) { return static_cast<int32_t>(first + q); });
  team.threads([&](int l) {
    float lo = INFINITY;  // a NaN logit compares false: it is never the lowest
    for (int64_t q = l; q < n; q += team.size()) lo = x[q] < lo ? x[q] : lo;
    low[l] = lo;
  });
  team.threads([&](int l) {
    if (l != 0) return;
    float lo = INFINITY;
    for (int t = 0; t < team.size(); ++t) lo = low[t] < lo ? low[t] : lo;
    *out = {best_value[0], best_id[0], lo, 0};
  });
}

}  // namespace detail

template <class E>
void draw_rows(E& e, DeviceScratch<E>& s, const float* logits, int64_t n_rows, int64_t n_vocab,
               const kernels::RowDrawParams* params, int32_t* tokens, float* token_logits) {
  if (n_rows <= 0) return;
  constexpr int kTeam = kTopLogitsTeam, kRow = kDrawRowTeam;
  static_assert(kDrawBins % kRow == 0, "team_find_bin gives each thread a whole run of bins");
  const int64_t parts = top_logits_parts(n_vocab);
  auto* part_ranges = s.template get<detail::DrawPart>(ScratchSlot::kElementwise,
                                                       static_cast<size_t>(n_rows * parts));
  uint64_t* totals = s.template get<uint64_t>(
      ScratchSlot::kElementwiseAux, static_cast<size_t>(n_rows) * static_cast<size_t>(kDrawTotals));
  const kernels::DrawWeightScale scale = kernels::draw_weight_scale(n_vocab);

  // 1. The parts' best tokens and lowest logits; the row's totals zeroed.
  const size_t shared_1 = kTeam * (2 * sizeof(float) + sizeof(int32_t));
  e.for_each_team(n_rows * parts, kTeam, shared_1,
                  [=] V4_HD(int64_t i, const typename E::Team& team) {
                    auto* best_value = team.template shared<float>();
                    auto* best_id = reinterpret_cast<int32_t*>(best_value + kTeam);
                    auto* low = reinterpret_cast<float*>(best_id + kTeam);
                    const int64_t r = i / parts, part = i % parts;
                    team.threads([&](int l) {
                      uint64_t* row_totals = totals + r * kDrawTotals;
                      for (int64_t j = part * kTeam + l; j < kDrawTotals; j += parts * kTeam)
                        row_totals[j] = 0;
                    });
                    if (!(params[r].filters.temperature > 0.0f)) return;
                    const int64_t first = part * kTopLogitsPart;
                    const int64_t n = top_logits_part_size(n_vocab, part);
                    detail::draw_part_range(team, logits + r * n_vocab + first, n, first,
                                            best_value, best_id, low, part_ranges + i);
                  });

  // 2. The parts' weights into the row's masses and bin masses.
  const size_t shared_2 = (kDrawBins + 2) * sizeof(uint64_t) + sizeof(detail::DrawRange);
  e.for_each_team(n_rows * parts, kTeam, shared_2,
                  [=] V4_HD(int64_t i, const typename E::Team& team) {
                    uint64_t* bins = team.template shared<uint64_t>();
                    uint64_t* masses = bins + kDrawBins;
                    auto* range = reinterpret_cast<detail::DrawRange*>(masses + 2);
                    const int64_t r = i / parts, part = i % parts;
                    const kernels::WholeRowDrawOptions p = params[r].filters;
                    if (!(p.temperature > 0.0f)) return;
                    team.threads([&](int l) {
                      for (int b = l; b < kDrawBins; b += kTeam) bins[b] = 0;
                      if (l != 0) return;
                      *range = detail::draw_range(part_ranges + r * parts, parts);
                      masses[0] = masses[1] = 0;
                    });
                    const detail::DrawRange rr = *range;
                    if (rr.best < 0 || !isfinite(rr.max)) return;
                    const detail::DrawWeigher weigh = detail::draw_weigher(rr, p, scale);
                    const int64_t first = part * kTopLogitsPart;
                    const int64_t n = top_logits_part_size(n_vocab, part);
                    const float* x = logits + r * n_vocab + first;
                    team.threads([&](int l) {
                      uint64_t row_mass = 0, kept = 0;
                      for (int64_t q = l; q < n; q += kTeam) {
                        const float sx = weigh.scaled(x[q]);
                        const uint64_t w = weigh.weight(sx);
                        if (w == 0) continue;
                        row_mass += w;
                        if (!weigh.keeps(sx)) continue;
                        kept += w;
                        kernels::add_exact(bins + weigh.bin(x[q]), w);
                      }
                      kernels::add_exact(masses, row_mass);
                      kernels::add_exact(masses + 1, kept);
                    });
                    team.threads([&](int l) {
                      uint64_t* row_totals = totals + r * kDrawTotals;
                      for (int b = l; b < kDrawBins; b += kTeam) {
                        if (bins[b] != 0) kernels::add_exact(row_totals + b, bins[b]);
                      }
                      if (l != 0) return;
                      kernels::add_exact(row_totals + kDrawBins, masses[0]);
                      kernels::add_exact(row_totals + kDrawBins + 1, masses[1]);
                    });
                  });

  // 3. A team per row: the crossings, from the bins down to the token.
  constexpr int kCrossWidth = 256;  // team_crossing's threads over a bin too full to hold
  constexpr size_t kWork =
      std::max<size_t>(2 * kDrawHeld, size_t{kCrossWidth} * detail::kDrawDigits) * sizeof(uint64_t);
  const size_t shared_3 = kWork + kRow * sizeof(uint64_t) + sizeof(detail::DrawState);
  e.for_each_team(n_rows, kRow, shared_3, [=] V4_HD(int64_t r, const typename E::Team& team) {
    uint64_t* work = team.template shared<uint64_t>();  // the held tokens, or the radix's sums
    uint64_t* held_keys = work;
    uint64_t* held_weights = work + kDrawHeld;
    uint64_t* runs = work + kWork / sizeof(uint64_t);
    auto* st = reinterpret_cast<detail::DrawState*>(runs + kRow);
    const float* row = logits + r * n_vocab;
    const uint64_t* row_totals = totals + r * kDrawTotals;
    const kernels::WholeRowDrawOptions p = params[r].filters;
    const auto finish = [&](bool drawn) {
      team.threads([&](int l) {
        if (l != 0) return;
        tokens[r] = drawn ? st->token : -1;
        token_logits[r] = drawn ? row[st->token] : 0.0f;
      });
    };
    if (!(p.temperature > 0.0f)) return finish(false);
    team.threads([&](int l) {
      if (l != 0) return;
      st->range = detail::draw_range(part_ranges + r * parts, parts);
      st->token = st->range.best < 0 ? 0 : st->range.best;
      st->held_bin = -1;
    });
    const detail::DrawRange rr = st->range;
    if (rr.best < 0 || !isfinite(rr.max)) return finish(true);
    const uint64_t row_mass = row_totals[kDrawBins];
    uint64_t kept_mass = row_totals[kDrawBins + 1];
    if (kept_mass == 0) return finish(true);  // min-p above 1: the best token stands
    const detail::DrawWeigher weigh = detail::draw_weigher(rr, p, scale);
    // The first kept token in rank order whose cumulative weight passes x: its id, the weight
    // before it and its own into st.
    const auto cross = [&](uint64_t x) {
      detail::team_find_bin(team, row_totals, x, runs, st);
      const int bin = st->bin;
      if (bin != st->held_bin) {
        team.threads([&](int l) {
          if (l == 0) st->held = 0;
        });
        team.threads([&](int l) {
          for (int64_t i = l; i < n_vocab; i += kRow) {
            if (weigh.bin(row[i]) != bin) continue;
            uint64_t key = 0;
            const uint64_t w = weigh.kept(row[i], static_cast<int32_t>(i), key);
            if (w == 0) continue;
            const uint32_t slot = kernels::take_slot(&st->held);
            if (slot >= kDrawHeld) continue;
            held_keys[slot] = key;
            held_weights[slot] = w;
          }
        });
      }
      const uint64_t in_bin = x - st->bin_before;
      if (st->held <= kDrawHeld) {
        detail::team_held_crossing(team, in_bin, st->held, held_keys, held_weights, st);
      } else {
        const auto in_the_bin = [&](int64_t i, uint64_t& key) -> uint64_t {
          if (weigh.bin(row[i]) != bin) return 0;
          return weigh.kept(row[i], static_cast<int32_t>(i), key);
        };
        detail::team_crossing(team, kCrossWidth, in_bin, n_vocab, in_the_bin, work, st);
      }
      team.threads([&](int l) {
        if (l != 0) return;
        st->before += st->bin_before;
        // Held whole, or known to overflow the room: either way a second crossing in this bin
        // needs no new pass (the radix search's sums took only the room of tokens not held).
        st->held_bin = bin;
      });
    };
    if (p.top_p < 1.0f) {  // top-p's prefix first: its mass is the draw's total
      const uint64_t reach = kernels::draw_top_p_reach(p.top_p, row_mass);
      if (kept_mass >= reach) {
        cross(reach - 1);
        kept_mass = st->before + st->found;
      }
    }
    // Below kept_mass for any 53 bits; the clamp keeps a wider value (not a draw's) in the row.
    const uint64_t x = kernels::draw_threshold(params[r].bits53, kept_mass);
    cross(x < kept_mass ? x : kept_mass - 1);
    finish(true);
  });
}

}  // namespace v4::device
