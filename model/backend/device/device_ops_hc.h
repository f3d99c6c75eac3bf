// STUB: replaced by the family implementation.
#pragma once

#include <cstdlib>

#include "model/backend/device/device_ops.h"

namespace v4::device {

template <class E>
void hc_pre(E& e, DeviceScratch<E>& s, const HcMixing& hc, const float* x, int64_t n_tokens,
            float* y, float* post, float* comb) {
  std::abort();
}

template <class E>
void hc_post(E& e, DeviceScratch<E>& s, const float* f, const float* x, const float* post,
             const float* comb, int64_t n_tokens, uint32_t n_hc, int64_t n_embd, float* x_out) {
  std::abort();
}

template <class E>
void hc_head(E& e, DeviceScratch<E>& s, const HcMixing& hc, const float* x, int64_t n_tokens,
             float* z) {
  std::abort();
}

}  // namespace v4::device
