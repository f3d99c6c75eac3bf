// STUB: replaced by the family implementation.
#pragma once

#include <cstdlib>

#include "model/backend/device/device_ops.h"
#include "model/backend/device/device_ops_kv_simulation.h"

namespace v4::device {

template <class E>
void rms_norm(E& e, DeviceScratch<E>& s, const float* x, const float* weight, int64_t n,
              int64_t n_rows, float eps, float* y) {
  std::abort();
}

template <class E>
void rope(E& e, DeviceScratch<E>& s, float* x, int64_t n_tokens, int64_t heads, int64_t head_stride,
          int64_t offset, int64_t rope_dim, const uint64_t* positions, const float* freqs,
          bool inverse) {
  std::abort();
}

template <class E>
void scale(E& e, DeviceScratch<E>& s, float* x, int64_t n, float factor) {
  std::abort();
}

template <class E>
void add(E& e, DeviceScratch<E>& s, const float* a, int64_t n, float* y) {
  std::abort();
}

template <class E>
void gather_rows(E& e, DeviceScratch<E>& s, const float* src, int64_t width, const int64_t* rows,
                 int64_t n, float* dst) {
  std::abort();
}

template <class E>
void sum_slots(E& e, DeviceScratch<E>& s, const float* slots, const int64_t* slot_rows,
               int64_t n_tokens, uint32_t k, int64_t width, float* out) {
  std::abort();
}

}  // namespace v4::device
