// quantize_row(): the dispatcher, plus the formats whose encoders are a single pass — F32, F16,
// BF16 (round to nearest even), Q8_0 (via the activation quantizer, same algorithm) and MXFP4.
// Q8_0, MXFP4 and BF16 match gguf-py's `gguf.quants.quantize` bit for bit (spec §6).
#include <cassert>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_tables.h"
#include "kernels/cpu/quantize_rows.h"

namespace v4::kernels {
namespace {

// Index of the kvalues_mxfp4 entry nearest to x at scale d; the first of equals wins, as in
// ggml's best_index_mxfp4 and numpy's argmin (so ±0 codes resolve to 0, not 8).
uint8_t best_index_mxfp4(float x, float d) {
  uint8_t best = 0;
  float best_err = std::fabs(kvalues_mxfp4[0] * d - x);
  for (uint8_t i = 1; i < 16; ++i) {
    const float err = std::fabs(kvalues_mxfp4[i] * d - x);
    if (err < best_err) {
      best = i;
      best_err = err;
    }
  }
  return best;
}

}  // namespace

// ggml quantize_row_mxfp4_ref. e = floor(log2(amax)) − 2 + 127 gives scale 2^(floor(log2 amax) −
// 3), so amax/scale lies in [8, 16): the largest code (12, i.e. E2M1 6.0) is used, and magnitudes
// above 12·scale clip to it — ggml's choice, kept for bit-exactness.
void quantize_row_mxfp4(const float* x, BlockMXFP4* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK_MXFP4; ++i, x += kQK_MXFP4) {
    float amax = 0.0f;
    for (int j = 0; j < kQK_MXFP4; ++j) {
      if (amax < std::fabs(x[j])) amax = std::fabs(x[j]);
    }
    // The float -> int -> uint8 path wraps like numpy's astype(uint8) for amax < 2^-125, where
    // ggml's direct float -> uint8 cast would be undefined.
    const uint8_t e =
        amax > 0.0f ? static_cast<uint8_t>(static_cast<int>(std::floor(std::log2(amax)) - 2 + 127))
                    : 0;
    const float d = e8m0_to_fp32_half(e);
    y[i].e = e;
    for (int j = 0; j < kQK_MXFP4 / 2; ++j) {
      const uint8_t low = best_index_mxfp4(x[j], d);
      const uint8_t high = best_index_mxfp4(x[j + kQK_MXFP4 / 2], d);
      y[i].qs[j] = static_cast<uint8_t>(low | (high << 4));
    }
  }
}

bool can_quantize(GgmlType type) { return can_dequantize(type); }

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
  assert(n % ggml_type_traits(type).block_size == 0);
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_fp16(src[i]);
      return;
    }
    case GgmlType::BF16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_bf16(src[i]);
      return;
    }
    case GgmlType::Q8_0:
      return quantize_row_q8_0(src, dst, n);
    case GgmlType::Q2_K:
      return quantize_row_q2_k(src, static_cast<BlockQ2K*>(dst), n);
    case GgmlType::Q4_K:
      return quantize_row_q4_k(src, static_cast<BlockQ4K*>(dst), n);
    case GgmlType::Q5_K:
      return quantize_row_q5_k(src, static_cast<BlockQ5K*>(dst), n);
    case GgmlType::Q6_K:
      return quantize_row_q6_k(src, static_cast<BlockQ6K*>(dst), n);
    case GgmlType::IQ2_XXS:
      return quantize_row_iq2_xxs(src, static_cast<BlockIQ2XXS*>(dst), n);
    case GgmlType::IQ2_XS:
      return quantize_row_iq2_xs(src, static_cast<BlockIQ2XS*>(dst), n);
    case GgmlType::IQ1_S:
      return quantize_row_iq1_s(src, static_cast<BlockIQ1S*>(dst), n);
    case GgmlType::IQ1_M:
      return quantize_row_iq1_m(src, static_cast<BlockIQ1M*>(dst), n);
    case GgmlType::MXFP4:
      return quantize_row_mxfp4(src, static_cast<BlockMXFP4*>(dst), n);
    default:
      assert(false && "quantize_row: type not supported; check can_quantize first");
  }
}

}  // namespace v4::kernels
