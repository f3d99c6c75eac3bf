// The device ops' FP8 and FP4 (QAT) simulations of the KV rows (spec §3.4.2, §3.4.4): the CPU's
// per-row functions (kernels/cpu/fp8.h, fp4.h), one row per index, so both backends produce the
// same bits.
#pragma once

#include "kernels/cpu/fp4.h"
#include "kernels/cpu/fp8.h"
#include "model/backend/device/device_ops.h"

namespace v4::device {

template <class E>
void fp8_round_trip(E& e, DeviceScratch<E>& s, float* x, int64_t n_rows, int64_t stride, int64_t n,
                    int64_t block) {
  e.for_each(n_rows, [=] V4_HD(int64_t r) { kernels::fp8_round_trip(x + r * stride, n, block); });
}

template <class E>
void indexer_qat(E& e, DeviceScratch<E>& s, float* x, int64_t n_rows, int64_t dim) {
  e.for_each(n_rows, [=] V4_HD(int64_t r) { kernels::indexer_qat_transform(x + r * dim, dim); });
}

}  // namespace v4::device
