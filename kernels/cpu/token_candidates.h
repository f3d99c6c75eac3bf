// A row of logits as the sampler needs it: its best tokens in sampling's order (logit
// descending, lower id first on ties; model/sampling/sampling.h) and its log-normalizer
// log Σ exp(logit). Both backends select with these functions, so the order is one definition;
// a device computes the same selection with a team (model/backend/device/device_ops_sampling.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/hd.h"

namespace v4::kernels {

// The most candidates one row returns: top_logprobs (OpenAI allows 20) and top-k sampling
// (common settings 20–50) fit; larger requests take the row's full logits.
inline constexpr uint32_t kMaxTokenCandidates = 64;

// Whether token a (logit la) comes before token b (logit lb) in sampling's order. A NaN logit
// comes before nothing and nothing comes before it: it is never selected.
V4_HD inline bool ranks_before(float la, int32_t a, float lb, int32_t b) {
  return la > lb || (la == lb && a < b);
}

// The k best tokens of row[0, n) into ids/values (k entries, best first); slots past the
// row's orderable tokens get id -1 and -inf. One pass keeping a sorted list of k.
V4_HD inline void select_top_candidates(const float* row, int64_t n, uint32_t k, int32_t* ids,
                                        float* values) {
  if (k == 0) return;
  uint32_t have = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = row[i];
    const auto id = static_cast<int32_t>(i);
    if (v != v) continue;
    if (have == k && !ranks_before(v, id, values[k - 1], ids[k - 1])) continue;
    uint32_t at = have < k ? have++ : k - 1;
    for (; at > 0 && ranks_before(v, id, values[at - 1], ids[at - 1]); --at) {
      ids[at] = ids[at - 1];
      values[at] = values[at - 1];
    }
    ids[at] = id;
    values[at] = v;
  }
  for (uint32_t j = have; j < k; ++j) {
    ids[j] = -1;
    values[j] = -std::numeric_limits<float>::infinity();
  }
}

// log Σ_i exp(row[i]) as max + log Σ exp(row[i] − max) in double, summed in index order: the
// normalizer of the host's logprobs (worker/prompt_logprobs.cpp) and of CpuBackend::top_logits,
// so a row's logprobs are the same whichever side selected it. `max` is the row's largest logit.
inline double log_normalizer(const float* row, int64_t n, float max) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(row[i]) - max);
  return max + std::log(sum);
}

}  // namespace v4::kernels
