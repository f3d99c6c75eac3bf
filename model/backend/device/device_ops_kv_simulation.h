// STUB: the FP8 and FP4 (QAT) simulations of the KV rows (spec §3.4.2, §3.4.4).
#pragma once

#include <cstdlib>

#include "model/backend/device/device_ops.h"

namespace v4::device {

template <class E>
void fp8_round_trip(E& e, DeviceScratch<E>& s, float* x, int64_t n_rows, int64_t stride, int64_t n,
                    int64_t block) {
  std::abort();
}

template <class E>
void indexer_qat(E& e, DeviceScratch<E>& s, float* x, int64_t n_rows, int64_t dim) {
  std::abort();
}

}  // namespace v4::device
