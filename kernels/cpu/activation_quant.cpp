// Activation quantization for the dot products (spec §6): Q8_0 for Q8_0/MXFP4 weights and Q8_K
// (with per-16 sums) for the K and IQ weights — ggml's quantize_row_q8_0_ref and
// quantize_row_q8_K_ref. Q8_0 is also the Q8_0 weight encoder.
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_rounding.h"

namespace v4::kernels {

// d = amax/127 stored as fp16; codes = roundf(x/d) (half away from zero), computed with the
// fp32 reciprocal of the unrounded d, as ggml and gguf-py do.
void quantize_row_q8_0(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK8_0; ++i, src += kQK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) {
      const float ax = std::fabs(src[j]);
      amax = amax > ax ? amax : ax;  // ggml's MAX macro: a NaN input poisons the block like there
    }
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(src[j] * id));
  }
}

// Scale from the signed value of largest magnitude: iscale = −127/max maps it to −127 exactly
// (ggml uses 127, not 128, so the IQ2 dot products stay within int8 after sign flips); codes
// round half to even (nearest_int); d = 1/iscale is kept in fp32.
void quantize_row_q8_k(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8K*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i, src += kQK_K) {
    float max = 0, amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(src[j]);
      if (ax > amax) {
        amax = ax;
        max = src[j];
      }
    }
    if (amax == 0.0f) {
      // ggml leaves bsums untouched here; we zero them so the block is fully defined.
      std::memset(&y[i], 0, sizeof(BlockQ8K));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) {
      const int v = nearest_int(iscale * src[j]);
      y[i].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * g + l];
      y[i].bsums[g] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}

}  // namespace v4::kernels
