// The device ops' MoE routing (spec §3.5): each token's expert choice with the CPU's own
// function (kernels/cpu/moe_routing.h), and the dispatch plan as a counting sort in which every
// expert is one index walking the (token, slot) pairs in order — the CPU's row order exactly,
// without atomics.
#pragma once

#include "kernels/cpu/moe_routing.h"
#include "model/backend/device/device_ops.h"

namespace v4::device {

template <class E>
void route_experts(E& e, DeviceScratch<E>& s, const ExpertRouting& r, const float* logits,
                   const int32_t* tokens, int64_t n_tokens, int32_t* experts, float* weights) {
  if (n_tokens <= 0) return;
  float* probs = s.template get<float>(ScratchSlot::kElementwiseAux,
                                       static_cast<size_t>(n_tokens) * r.n_expert);
  const kernels::ExpertSelection sel{r.n_expert, r.k, r.weights_scale, r.normalize};
  const ExpertRouting routing = r;
  // The probabilities a thread per (token, expert), then the choice a thread per token.
  const int64_t n_expert = r.n_expert;
  e.for_each(n_tokens * n_expert,
             [=] V4_HD(int64_t i) { probs[i] = kernels::sqrt_softplus(logits[i]); });
  e.for_each(n_tokens, [=] V4_HD(int64_t t) {
    const int32_t* hash_row =
        routing.hash_table
            ? routing.hash_table + static_cast<size_t>(tokens[t]) * routing.hash_width
            : nullptr;
    kernels::select_experts_from_probs(sel, probs + t * n_expert, routing.bias, hash_row,
                                       experts + t * routing.k, weights + t * routing.k);
  });
}

template <class E>
void group_by_expert(E& e, DeviceScratch<E>& s, const int32_t* experts, const float* weights,
                     int64_t n_tokens, uint32_t k, uint32_t n_expert, int64_t* offsets,
                     int64_t* source_token, float* row_scale, int64_t* slot_row) {
  const int64_t pairs = n_tokens * k;
  // offsets[x] = the pairs of experts below x: a count per thread rather than a serial prefix
  // sum over the experts.
  e.for_each(int64_t{n_expert} + 1, [=] V4_HD(int64_t x) {
    int64_t below = 0;
    for (int64_t i = 0; i < pairs; ++i) below += experts[i] < x;
    offsets[x] = below;
  });
  e.for_each(n_expert, [=] V4_HD(int64_t x) {
    int64_t row = offsets[x];
    for (int64_t i = 0; i < pairs; ++i) {
      if (experts[i] != x) continue;
      source_token[row] = i / k;
      row_scale[row] = weights[i];
      slot_row[i] = row++;
    }
  });
}

template <class E>
void count_experts(E& e, DeviceScratch<E>& s, const int32_t* experts, int64_t n, uint64_t* counts) {
  // The op does not know the expert count, so the indices are the selections: the first
  // selection of each expert adds that expert's total, and every counter has one writer.
  e.for_each(n, [=] V4_HD(int64_t i) {
    for (int64_t j = 0; j < i; ++j) {
      if (experts[j] == experts[i]) return;
    }
    uint64_t c = 0;
    for (int64_t j = i; j < n; ++j) c += experts[j] == experts[i];
    counts[experts[i]] += c;
  });
}

}  // namespace v4::device
