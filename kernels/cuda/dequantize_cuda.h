// Device-side dequantization of Q8_0 and F16 rows (spec §6), the formats of the dense attention
// and shared-expert weights. Mirrors kernels::dequantize_row bit for bit.
#pragma once

#include <cstdint>

#include "core/ggml_type.h"
#include "core/status.h"

namespace v4::kernels::cuda {

// Dequantizes `n` values from device memory `src` into device memory `dst` on the default
// stream and waits for completion. Supports GgmlType::Q8_0 and GgmlType::F16.
Status dequantize_device(GgmlType type, const void* src, float* dst, int64_t n);

}  // namespace v4::kernels::cuda
