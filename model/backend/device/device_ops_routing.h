// The device ops' MoE routing (spec §3.5): each token's expert choice as the CPU's own function
// (kernels/cpu/moe_routing.h) chooses, a team per token, and the dispatch plan as a counting sort
// in which every expert is one index walking the (token, slot) pairs in order — the CPU's row order
// exactly, without atomics. The load counters (ExpertRouting::counts) are integer atomic adds:
// the same totals in any order.
#pragma once

#include "kernels/cpu/moe_routing.h"
#include "kernels/device/integer_atomics.h"
#include "model/backend/device/device_ops.h"

namespace v4::device {

// Threads of the team that routes one token.
inline constexpr int kRouteTeam = 256;

template <class E>
void route_experts(E& e, DeviceScratch<E>& s, const ExpertRouting& r, const float* logits,
                   const int32_t* tokens, int64_t n_tokens, int32_t* experts, float* weights) {
  if (n_tokens <= 0) return;
  const kernels::ExpertSelection sel{r.n_expert, r.k, r.weights_scale, r.normalize};
  const ExpertRouting routing = r;
  const int64_t n_expert = r.n_expert;
  const uint32_t k = r.k;
  // A team per token. The CPU's top-k (select_top_k) takes the experts in the strict order
  // (score descending, id ascending), so the expert of slot j is the one that exactly j others
  // precede: a thread per expert counts them, no serial chain. A NaN score has no place in that
  // order (nor hash routing a need for it): then one thread runs the CPU's selection as it is.
  // Either way the weights are the CPU's function (select_experts_from_probs given the chosen
  // experts as its hash row, which it takes in order).
  const size_t shared = static_cast<size_t>(2 * n_expert + 1) * sizeof(float);
  e.for_each_team(n_tokens, kRouteTeam, shared, [=] V4_HD(int64_t t, const typename E::Team& team) {
    float* p = team.template shared<float>();
    float* score = p + n_expert;
    int32_t* serial = reinterpret_cast<int32_t*>(score + n_expert);
    int32_t* chosen = experts + t * k;
    float* chosen_weights = weights + t * k;
    const int32_t* hash_row =
        routing.hash_table
            ? routing.hash_table + static_cast<size_t>(tokens[t]) * routing.hash_width
            : nullptr;
    team.threads([&](int l) {
      if (l == 0) *serial = hash_row != nullptr || routing.bias == nullptr || n_expert < k;
      for (int64_t x = l; x < n_expert; x += team.size()) {
        p[x] = kernels::sqrt_softplus(logits[t * n_expert + x]);
        if (routing.bias) score[x] = p[x] + routing.bias[x];
      }
    });
    team.threads([&](int l) {
      if (!routing.bias) return;
      for (int64_t x = l; x < n_expert; x += team.size()) {
        if (score[x] != score[x]) *serial = 1;
      }
    });
    team.threads([&](int l) {
      if (*serial) return;
      for (int64_t x = l; x < n_expert; x += team.size()) {
        const float b = score[x];
        uint32_t ahead = 0;
        for (int64_t y = 0; y < n_expert; ++y) ahead += score[y] > b || (score[y] == b && y < x);
        if (ahead < k) chosen[ahead] = static_cast<int32_t>(x);
      }
    });
    team.threads([&](int l) {
      if (l != 0) return;
      kernels::select_experts_from_probs(sel, p, routing.bias, *serial ? hash_row : chosen, chosen,
                                         chosen_weights);
    });
    // The load counters: a thread per slot; the bound is read on the device (a replay's value,
    // not the recording's).
    team.threads([&](int l) {
      if (!routing.counts) return;
      for (uint32_t slot = static_cast<uint32_t>(l); slot < k; slot += team.size()) {
        if (routing.counted && t * k + slot >= *routing.counted) return;
        kernels::add_exact(routing.counts + chosen[slot], 1);
      }
    });
  });
}

template <class E>
void group_by_expert(E& e, DeviceScratch<E>& s, const int32_t* experts, const float* weights,
                     int64_t n_tokens, uint32_t k, uint32_t n_expert, int64_t* offsets,
                     int64_t* source_token, float* row_scale, int64_t* slot_row) {
  const int64_t pairs = n_tokens * k;
  const int64_t n_offsets = int64_t{n_expert} + 1;
  // One team, one launch: offsets[x] = the pairs of experts below x, a count per thread rather
  // than a serial prefix sum over the experts; then each expert's thread walks the pairs in
  // order and places its own.
  e.for_each_team(1, kRouteTeam, 0, [=] V4_HD(int64_t, const typename E::Team& team) {
    team.threads([&](int l) {
      for (int64_t x = l; x < n_offsets; x += team.size()) {
        int64_t below = 0;
        for (int64_t i = 0; i < pairs; ++i) below += experts[i] < x;
        offsets[x] = below;
      }
    });
    team.threads([&](int l) {
      for (int64_t x = l; x < n_expert; x += team.size()) {
        int64_t row = offsets[x];
        for (int64_t i = 0; i < pairs; ++i) {
          if (experts[i] != x) continue;
          source_token[row] = i / k;
          row_scale[row] = weights[i];
          slot_row[i] = row++;
        }
      }
    });
  });
}

}  // namespace v4::device
