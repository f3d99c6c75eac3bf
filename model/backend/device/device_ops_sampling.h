// The device op that draws a row's token on the device (Backend::draw_rows), so that a request
// sampling without a top-k sends back 8 bytes, not its row. It is the host's whole-row draw
// (kernels/cpu/whole_row_draw.h) as a team: the fixed-point weights' sums are integers, so the
// team's tree sums are exact, and a most-significant-digit radix search over the rank key, 4 bits
// a round (16 sums per thread, then a tree), finds the token where the cumulative weight passes
// the draw's target: the token the host's search finds, with no sort and no atomics. The row's
// best token is found as top_logits finds it (device_ops_top_logits.h).
#pragma once

#include <math.h>

#include <limits>

#include "kernels/cpu/draw_weight.h"
#include "kernels/cpu/token_candidates.h"
#include "model/backend/device/device_ops.h"
#include "model/backend/device/device_ops_top_logits.h"

namespace v4::device {

namespace detail {

// One team's exact sum over threads of the kDrawDigits integers each thread left at
// sums[thread·kDrawDigits ..]: a tree, so thread 0's holds the team's totals afterwards.
inline constexpr int kDrawDigits = 16;  // a radix round takes 4 bits of the rank key

template <class Team>
V4_HD void team_digit_sums(const Team& team, uint64_t* sums) {
  for (int half = team.size() / 2; half > 0; half /= 2) {
    team.threads([&](int l) {
      if (l >= half) return;
      for (int d = 0; d < kDrawDigits; ++d)
        sums[l * kDrawDigits + d] += sums[(l + half) * kDrawDigits + d];
    });
  }
}

// What a team's draw keeps between phases (shared memory).
struct DrawState {
  uint64_t prefix;     // the rank key's digits found so far
  uint64_t before;     // the kept weight ranked before every key with that prefix
  uint64_t found;      // the weight of the last digit found
  uint64_t kept_mass;  // the draw's total: the kept tokens', or top-p's prefix's
  uint64_t row_mass;   // every drawable token's (top-p's reference)
  float max;           // the best logit
  int32_t best;        // the best token, -1 when every logit is NaN
  int32_t token;       // the answer
  int32_t unused;
};

}  // namespace detail

namespace detail {

// The first kept token in rank order whose cumulative weight passes x, into st->token, and the
// weight through it, st->before + st->found. `kept(i, key)`: token i's weight when min-p keeps
// it (its rank key into key), else 0. A most-significant-digit radix search, 4 bits a round:
// each thread sums its strided tokens that share the digits found so far into 16 integers per
// next digit, a tree adds them up (exact), and thread 0 takes the digit where the sum passes x.
template <class Team, class Kept>
V4_HD void team_crossing(const Team& team, uint64_t x, int64_t n, const Kept& kept, uint64_t* sums,
                         DrawState* st) {
  const int size = team.size();
  team.threads([&](int l) {
    if (l != 0) return;
    st->prefix = 0;
    st->before = 0;
  });
  for (int shift = 64 - 4; shift >= 0; shift -= 4) {
    team.threads([&](int l) {
      uint64_t* mine = sums + l * kDrawDigits;
      for (int d = 0; d < kDrawDigits; ++d) mine[d] = 0;
      const uint64_t prefix = st->prefix;
      for (int64_t i = l; i < n; i += size) {
        uint64_t key = 0;
        const uint64_t w = kept(i, key);
        if (w == 0 || (shift < 60 && (key >> (shift + 4)) != prefix)) continue;
        mine[(key >> shift) & (kDrawDigits - 1)] += w;
      }
    });
    team_digit_sums(team, sums);
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

}  // namespace detail

template <class E>
void draw_rows(E& e, DeviceScratch<E>&, const float* logits, int64_t n_rows, int64_t n_vocab,
               const kernels::RowDrawParams* params, int32_t* tokens, float* token_logits) {
  if (n_rows <= 0) return;
  constexpr int kTeam = kTopLogitsTeam, kDigits = detail::kDrawDigits;
  const size_t shared = kTeam * kDigits * sizeof(uint64_t) +
                        kTeam * (sizeof(float) + sizeof(int32_t)) + sizeof(detail::DrawState);
  const kernels::DrawWeightScale scale = kernels::draw_weight_scale(n_vocab);
  e.for_each_team(n_rows, kTeam, shared, [=] V4_HD(int64_t r, const typename E::Team& team) {
    uint64_t* sums = team.template shared<uint64_t>();
    float* best_value = reinterpret_cast<float*>(sums + kTeam * kDigits);
    int32_t* best_id = reinterpret_cast<int32_t*>(best_value + kTeam);
    auto* st = reinterpret_cast<detail::DrawState*>(best_id + kTeam);
    const float* row = logits + r * n_vocab;
    const kernels::WholeRowDrawOptions p = params[r].filters;
    const uint64_t bits53 = params[r].bits53;
    const auto finish = [&](bool drawn) {
      team.threads([&](int l) {
        if (l != 0) return;
        tokens[r] = drawn ? st->token : -1;
        token_logits[r] = drawn ? row[st->token] : 0.0f;
      });
    };
    if (!(p.temperature > 0.0f)) return finish(false);
    detail::team_best_after(team, row, n_vocab, true, 0.0f, -1, best_value, best_id);
    team.threads([&](int l) {
      if (l != 0) return;
      st->best = best_id[0];
      st->max = best_value[0];
      st->token = st->best < 0 ? 0 : st->best;
    });
    if (st->best < 0 || !isfinite(st->max)) return finish(true);
    const float max = st->max;
    const float min_x = kernels::draw_min_scaled_logit(p.min_p);
    // The row's and the kept tokens' masses, in sums[0] and sums[1] after the tree.
    team.threads([&](int l) {
      uint64_t row_mass = 0, kept = 0;
      for (int64_t i = l; i < n_vocab; i += kTeam) {
        const float x = kernels::draw_scaled_logit(row[i], max, p.temperature);
        const uint64_t w = kernels::draw_weight(x, scale);
        row_mass += w;
        if (!(x < min_x)) kept += w;
      }
      for (int d = 0; d < kDigits; ++d) sums[l * kDigits + d] = 0;
      sums[l * kDigits] = row_mass;
      sums[l * kDigits + 1] = kept;
    });
    detail::team_digit_sums(team, sums);
    team.threads([&](int l) {
      if (l != 0) return;
      st->row_mass = sums[0];
      st->kept_mass = sums[1];
    });
    if (st->kept_mass == 0) return finish(true);  // min-p above 1: the best token stands
    const auto kept_weight = [&](int64_t i, uint64_t& key) -> uint64_t {
      const float v = row[i];
      const float x = kernels::draw_scaled_logit(v, max, p.temperature);
      const uint64_t w = kernels::draw_weight(x, scale);
      if (w == 0 || x < min_x) return 0;
      key = kernels::draw_rank_key(v, static_cast<int32_t>(i));
      return w;
    };
    if (p.top_p < 1.0f) {  // top-p's prefix first: its mass is the draw's total
      const uint64_t reach = kernels::draw_top_p_reach(p.top_p, st->row_mass);
      if (st->kept_mass >= reach) {
        detail::team_crossing(team, reach - 1, n_vocab, kept_weight, sums, st);
        team.threads([&](int l) {
          if (l == 0) st->kept_mass = st->before + st->found;
        });
      }
    }
    detail::team_crossing(team, kernels::draw_threshold(bits53, st->kept_mass), n_vocab,
                          kept_weight, sums, st);
    finish(true);
  });
}

}  // namespace v4::device
