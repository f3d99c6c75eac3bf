// The device op that lets a step return what the sampler needs instead of whole rows of logits
// (Backend::top_logits): a team per row selects the row's k best tokens in sampling's order
// (kernels/cpu/token_candidates.h) and, when asked, sums its log-normalizer. Only ids, logits and
// one double per row then cross to the host: 8·k + 8 bytes where a row is 4·n_vocab.
//
// The selection is exact: round j takes the best token that ranks after round j−1's, a strided
// scan per thread and a tree over the team; the order is total (ties by id, NaN never ranks),
// so the result is CpuBackend's bit for bit. The log-normalizer is summed in double in a fixed
// lane-strided order, not the CPU's index order, so it may differ in its last bits only.
#pragma once

#include <math.h>

#include <limits>

#include "kernels/cpu/token_candidates.h"
#include "model/backend/device/device_ops.h"

namespace v4::device {

// Threads of a row's team.
inline constexpr int kTopLogitsTeam = 256;

namespace detail {

// Whether candidate (v, id) may be round j's: it ranks after the previous round's pick.
V4_HD inline bool follows(bool first, float prev_value, int32_t prev_id, float v, int32_t id) {
  return first || (prev_id >= 0 && kernels::ranks_before(prev_value, prev_id, v, id));
}

// Whether (v, id) is better than the best so far (id -1: none yet).
V4_HD inline bool better(float v, int32_t id, float best_value, int32_t best_id) {
  return id >= 0 && (best_id < 0 || kernels::ranks_before(v, id, best_value, best_id));
}

}  // namespace detail

template <class E>
void top_logits(E& e, DeviceScratch<E>& s, const float* logits, int64_t n_rows, int64_t n_vocab,
                uint32_t k, int32_t* ids, float* values, double* log_normalizer) {
  if (n_rows <= 0 || k == 0) return;
  constexpr int kTeam = kTopLogitsTeam;
  const size_t shared = kTeam * (sizeof(double) + sizeof(float) + sizeof(int32_t));
  e.for_each_team(n_rows, kTeam, shared, [=] V4_HD(int64_t r, const typename E::Team& team) {
    double* part = team.template shared<double>();
    float* best_value = reinterpret_cast<float*>(part + kTeam);
    int32_t* best_id = reinterpret_cast<int32_t*>(best_value + kTeam);
    const float* row = logits + r * n_vocab;
    int32_t* row_ids = ids + r * k;
    float* row_values = values + r * k;
    for (uint32_t j = 0; j < k; ++j) {
      team.threads([&](int l) {
        const bool first = j == 0;
        const float pv = first ? 0.0f : row_values[j - 1];
        const int32_t pi = first ? -1 : row_ids[j - 1];
        float bv = 0.0f;
        int32_t bi = -1;
        for (int64_t i = l; i < n_vocab; i += kTeam) {
          const float v = row[i];
          const auto id = static_cast<int32_t>(i);
          if (v != v || !detail::follows(first, pv, pi, v, id)) continue;
          if (detail::better(v, id, bv, bi)) {
            bv = v;
            bi = id;
          }
        }
        best_value[l] = bv;
        best_id[l] = bi;
      });
      for (int half = kTeam / 2; half > 0; half /= 2) {
        team.threads([&](int l) {
          if (l >= half) return;
          if (detail::better(best_value[l + half], best_id[l + half], best_value[l], best_id[l])) {
            best_value[l] = best_value[l + half];
            best_id[l] = best_id[l + half];
          }
        });
      }
      team.threads([&](int l) {
        if (l != 0) return;
        row_ids[j] = best_id[0];
        row_values[j] = best_id[0] >= 0 ? best_value[0] : -std::numeric_limits<float>::infinity();
      });
    }
    if (!log_normalizer) return;
    team.threads([&](int l) {
      const double mx = row_values[0];
      double sum = 0.0;
      for (int64_t i = l; i < n_vocab; i += kTeam) sum += ::exp(static_cast<double>(row[i]) - mx);
      part[l] = sum;
    });
    team.threads([&](int l) {
      if (l != 0) return;
      double sum = 0.0;
      for (int t = 0; t < kTeam; ++t) sum += part[t];
      log_normalizer[r] = static_cast<double>(row_values[0]) + ::log(sum);
    });
  });
}

}  // namespace v4::device
