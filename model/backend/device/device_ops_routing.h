// STUB: replaced by the family implementation.
#pragma once

#include <cstdlib>

#include "model/backend/device/device_ops.h"

namespace v4::device {

template <class E>
void route_experts(E& e, DeviceScratch<E>& s, const ExpertRouting& routing, const float* logits,
                   const int32_t* tokens, int64_t n_tokens, int32_t* experts, float* weights) {
  std::abort();
}

template <class E>
void group_by_expert(E& e, DeviceScratch<E>& s, const int32_t* experts, const float* weights,
                     int64_t n_tokens, uint32_t k, uint32_t n_expert, int64_t* expert_offsets,
                     int64_t* source_token, float* row_scale, int64_t* slot_row) {
  std::abort();
}

template <class E>
void count_experts(E& e, DeviceScratch<E>& s, const int32_t* experts, int64_t n, uint64_t* counts) {
  std::abort();
}

}  // namespace v4::device
