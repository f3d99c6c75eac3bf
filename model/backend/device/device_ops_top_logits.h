// The device op that lets a step return what the sampler needs instead of whole rows of logits
// (Backend::top_logits): each row's k best tokens in sampling's order
// (kernels/cpu/token_candidates.h) and, when asked, its log-normalizer. Only ids, logits and one
// double per row then cross to the host: 8·k + 8 bytes where a row is 4·n_vocab.
//
// The selection is exact: round j takes the best token that ranks after round j−1's, a strided
// scan per thread and a tree over the team; the order is total (ties by id, NaN never ranks), so
// any exact selection is CpuBackend's bit for bit. A row is cut into parts of kTopLogitsPart
// logits, and a team per (row, part) selects the part's k best, so a row's scans spread over the
// GPU's multiprocessors instead of one team reading all 129280 logits k times; a second launch
// selects the row's k best among its parts' (the row's k best are among them). The parts depend
// on the vocabulary only, never on the batch.
//
// The log-normalizer is summed in double: each part's Σ exp(x − its best) in a fixed lane-strided
// order, then the parts' sums rescaled to the row's best in part order. Not the CPU's index order,
// so it may differ in its last bits only; NaN where the CPU's is NaN (a NaN logit, or a best that
// is not finite).
#pragma once

#include <math.h>

#include <limits>

#include "kernels/cpu/token_candidates.h"
#include "model/backend/device/device_ops.h"

namespace v4::device {

// Threads of a selection team.
inline constexpr int kTopLogitsTeam = 256;
// Logits of a row one team of the first launch selects from: 16 a thread.
inline constexpr int64_t kTopLogitsPart = 16 * kTopLogitsTeam;

// The parts a row of n_vocab logits is cut into.
inline int64_t top_logits_parts(int64_t n_vocab) {
  return (n_vocab + kTopLogitsPart - 1) / kTopLogitsPart;
}

// The logits of part `part` of a row of n_vocab: kTopLogitsPart, fewer in the last.
V4_HD inline int64_t top_logits_part_size(int64_t n_vocab, int64_t part) {
  const int64_t left = n_vocab - part * kTopLogitsPart;
  return left < kTopLogitsPart ? left : kTopLogitsPart;
}

namespace detail {

// Whether candidate (v, id) may be round j's: it ranks after the previous round's pick.
V4_HD inline bool follows(bool first, float prev_value, int32_t prev_id, float v, int32_t id) {
  return first || (prev_id >= 0 && kernels::ranks_before(prev_value, prev_id, v, id));
}

// Whether (v, id) is better than the best so far (id -1: none yet).
V4_HD inline bool better(float v, int32_t id, float best_value, int32_t best_id) {
  return id >= 0 && (best_id < 0 || kernels::ranks_before(v, id, best_value, best_id));
}

// Leaves in best_value[0] / best_id[0] the best of n candidates that ranks after (prev_value,
// prev_id), or after nothing when `first` (id -1 when there is none): a strided scan per thread,
// then a tree. Candidate i is value_of(i) with id id_of(i) (an id -1 is no candidate). The
// order is total, so this is the host's selection exactly.
template <class Team, class Value, class Id>
V4_HD void team_best_after(const Team& team, int64_t n, bool first, float prev_value,
                           int32_t prev_id, float* best_value, int32_t* best_id,
                           const Value& value_of, const Id& id_of) {
  const int size = team.size();
  team.threads([&](int l) {
    float bv = 0.0f;
    int32_t bi = -1;
    for (int64_t i = l; i < n; i += size) {
      const float v = value_of(i);
      const int32_t id = id_of(i);
      if (v != v || !follows(first, prev_value, prev_id, v, id)) continue;
      if (better(v, id, bv, bi)) {
        bv = v;
        bi = id;
      }
    }
    best_value[l] = bv;
    best_id[l] = bi;
  });
  for (int half = size / 2; half > 0; half /= 2) {
    team.threads([&](int l) {
      if (l < half && better(best_value[l + half], best_id[l + half], best_value[l], best_id[l])) {
        best_value[l] = best_value[l + half];
        best_id[l] = best_id[l + half];
      }
    });
  }
}

// team_best_after over a row of n logits, token i at row[i].
template <class Team>
V4_HD void team_best_after(const Team& team, const float* row, int64_t n, bool first,
                           float prev_value, int32_t prev_id, float* best_value, int32_t* best_id) {
  team_best_after(
      team, n, first, prev_value, prev_id, best_value, best_id, [row](int64_t i) { return row[i]; },
      [](int64_t i) { return static_cast<int32_t>(i); });
}

// k rounds of team_best_after, round j's pick into values[j] / ids[j] (-inf / -1 when there is
// none); each round reads the previous pick after the barrier that follows its write.
template <class Team, class Value, class Id>
V4_HD void team_select(const Team& team, int64_t n, uint32_t k, float* best_value, int32_t* best_id,
                       float* values, int32_t* ids, const Value& value_of, const Id& id_of) {
  for (uint32_t j = 0; j < k; ++j) {
    const bool first = j == 0;
    team_best_after(team, n, first, first ? 0.0f : values[j - 1], first ? -1 : ids[j - 1],
                    best_value, best_id, value_of, id_of);
    team.threads([&](int l) {
      if (l != 0) return;
      ids[j] = best_id[0];
      values[j] = best_id[0] >= 0 ? best_value[0] : -std::numeric_limits<float>::infinity();
    });
  }
}

// A part's term of the log-normalizer's sum: exp(x − best) for the part's best logit `best`
// where that is finite; NaN for a NaN logit (the row's sum is NaN then); 0 otherwise (a part of
// -inf logits, or one whose best is +inf, when the row's result is NaN anyway).
V4_HD inline double normalizer_term(float x, float best) {
  if (x != x) return static_cast<double>(x);
  return isfinite(best) ? ::exp(static_cast<double>(x) - best) : 0.0;
}

}  // namespace detail

template <class E>
void top_logits(E& e, DeviceScratch<E>& s, const float* logits, int64_t n_rows, int64_t n_vocab,
                uint32_t k, int32_t* ids, float* values, double* log_normalizer) {
  if (n_rows <= 0 || k == 0) return;
  constexpr int kTeam = kTopLogitsTeam;
  const int64_t parts = top_logits_parts(n_vocab), picks = parts * k;
  const auto candidates = static_cast<size_t>(n_rows * picks);
  float* part_values = s.template get<float>(ScratchSlot::kElementwise, 2 * candidates);
  auto* part_ids = reinterpret_cast<int32_t*>(part_values + candidates);
  double* part_sums =
      s.template get<double>(ScratchSlot::kElementwiseAux, static_cast<size_t>(n_rows * parts));
  const bool normalize = log_normalizer != nullptr;
  const size_t shared = kTeam * (sizeof(double) + sizeof(float) + sizeof(int32_t));
  // A team per (row, part): the part's k best, then (normalize) its sum relative to its best.
  e.for_each_team(
      n_rows * parts, kTeam, shared, [=] V4_HD(int64_t i, const typename E::Team& team) {
        double* part = team.template shared<double>();
        auto* best_value = reinterpret_cast<float*>(part + kTeam);
        auto* best_id = reinterpret_cast<int32_t*>(best_value + kTeam);
        const int64_t first = i % parts * kTopLogitsPart;
        const int64_t n = top_logits_part_size(n_vocab, i % parts);
        const float* x = logits + i / parts * n_vocab + first;
        float* own_values = part_values + i * k;
        int32_t* own_ids = part_ids + i * k;
        detail::team_select(
            team, n, k, best_value, best_id, own_values, own_ids, [x](int64_t q) { return x[q]; },
            [first](int64_t q) { return static_cast<int32_t>(first + q); });
        if (!normalize) return;
        const float best = own_values[0];
        team.threads([&](int l) {
          double sum = 0.0;
          for (int64_t q = l; q < n; q += kTeam) sum += detail::normalizer_term(x[q], best);
          part[l] = sum;
        });
        team.threads([&](int l) {
          if (l != 0) return;
          double sum = 0.0;
          for (int t = 0; t < kTeam; ++t) sum += part[t];
          part_sums[i] = sum;
        });
      });
  // A team per row: its k best among its parts' picks, then its log-normalizer.
  e.for_each_team(n_rows, kTeam, shared, [=] V4_HD(int64_t r, const typename E::Team& team) {
    auto* best_value = reinterpret_cast<float*>(team.template shared<double>() + kTeam);
    auto* best_id = reinterpret_cast<int32_t*>(best_value + kTeam);
    const float* row_picks = part_values + r * picks;
    const int32_t* row_pick_ids = part_ids + r * picks;
    float* row_values = values + r * k;
    detail::team_select(
        team, picks, k, best_value, best_id, row_values, ids + r * k,
        [row_picks](int64_t q) { return row_picks[q]; },
        [row_pick_ids](int64_t q) { return row_pick_ids[q]; });
    if (!normalize) return;
    team.threads([&](int l) {
      if (l != 0) return;
      const float best = row_values[0];
      if (!isfinite(best)) {
        log_normalizer[r] = std::numeric_limits<double>::quiet_NaN();
        return;
      }
      double sum = 0.0;
      for (int64_t p = 0; p < parts; ++p) {
        sum += part_sums[r * parts + p] *
               ::exp(static_cast<double>(part_values[(r * parts + p) * k]) - best);
      }
      log_normalizer[r] = static_cast<double>(best) + ::log(sum);
    });
  });
}

}  // namespace v4::device
