// STUB: replaced by the family implementation.
#pragma once

#include <cstdlib>

#include "model/backend/device/device_ops.h"

namespace v4::device {

template <class E>
void matmul(E& e, DeviceScratch<E>& s, const kernels::MatrixView& w, const float* x,
            int64_t x_stride, int64_t n_tokens, float* y, int64_t y_stride) {
  std::abort();
}

template <class E>
void embed(E& e, DeviceScratch<E>& s, const kernels::MatrixView& table, const int32_t* tokens,
           int64_t n_tokens, uint32_t copies, float* x) {
  std::abort();
}

template <class E>
void grouped_expert_ffn(E& e, DeviceScratch<E>& s, const ExpertFfnWeights& w,
                        const int64_t* expert_offsets, uint32_t n_expert, const float* x,
                        const float* row_scales, float* y) {
  std::abort();
}

}  // namespace v4::device
