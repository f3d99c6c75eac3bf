// A dot-product unit of a weight row as 32 signed bytes, for the integer tensor-core product
// (model/backend/device/device_ops_matmul_mma.h): the unit's integer sum is Σ w[l]·a[l] over
// those bytes and the unit's 32 activation quants, exactly the integer the lane loops of
// quant_dot.h compute, and the finish_* functions there turn it into the same float. Only the
// formats whose integer sum runs over all 32 values with one weight per byte take this form:
// Q8_0, MXFP4 (E2M1 codes doubled), Q2_K (2-bit codes times their 4-bit scale, at most 45),
// Q4_K and Q5_K (codes up to 31, the 6-bit scale applied after), IQ2_XXS (signed grid values).
// Q6_K, IQ2_XS and IQ1_M sum halves of 16 under separate scales and IQ1_S mixes in the
// activation sums; they keep the lane loops at every batch size.
#pragma once

#include <string.h>

#include <cstdint>

#include "core/ggml_type.h"
#include "core/half.h"
#include "core/hd.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/device/quant_dot.h"

namespace v4::kernels {

constexpr bool has_int8_units(GgmlType t) {
  return t == GgmlType::Q8_0 || t == GgmlType::MXFP4 || t == GgmlType::Q2_K ||
         t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::IQ2_XXS;
}

// Unit u of a weight row as 32 signed bytes, in the order of the unit's activation quants.
template <GgmlType T>
V4_HD inline void unit_weights_i8(const uint8_t* w_row, int64_t u, const QuantTables& t,
                                  int8_t* out) {
  if constexpr (T == GgmlType::Q8_0) {
    memcpy(out, reinterpret_cast<const BlockQ8_0*>(w_row)[u].qs, kQK8_0);
  } else if constexpr (T == GgmlType::MXFP4) {
    const BlockMXFP4& x = reinterpret_cast<const BlockMXFP4*>(w_row)[u];
    for (int j = 0; j < kQK_MXFP4 / 2; ++j) {
      out[j] = t.kvalues_mxfp4[x.qs[j] & 0xF];
      out[j + kQK_MXFP4 / 2] = t.kvalues_mxfp4[x.qs[j] >> 4];
    }
  } else {
    const int64_t b = u / 8;
    const int g = static_cast<int>(u % 8);
    if constexpr (T == GgmlType::Q2_K) {
      const BlockQ2K& x = reinterpret_cast<const BlockQ2K*>(w_row)[b];
      const int half = g / 4, shift = (g % 4) * 2;
      for (int l = 0; l < 32; ++l) {
        const int scale = x.scales[2 * g + l / 16] & 0xF;
        out[l] = static_cast<int8_t>(scale * ((x.qs[32 * half + l] >> shift) & 3));
      }
    } else if constexpr (T == GgmlType::Q4_K) {
      const BlockQ4K& x = reinterpret_cast<const BlockQ4K*>(w_row)[b];
      for (int l = 0; l < 32; ++l) out[l] = static_cast<int8_t>(k4_code(x, g, l));
    } else if constexpr (T == GgmlType::Q5_K) {
      const BlockQ5K& x = reinterpret_cast<const BlockQ5K*>(w_row)[b];
      for (int l = 0; l < 32; ++l) out[l] = static_cast<int8_t>(k4_code(x, g, l));
    } else if constexpr (T == GgmlType::IQ2_XXS) {
      const BlockIQ2XXS& x = reinterpret_cast<const BlockIQ2XXS*>(w_row)[b];
      uint32_t aux[2];
      memcpy(aux, x.qs + 4 * g, sizeof(aux));
      for (int k = 0; k < 4; ++k) {
        const uint64_t grid = t.iq2xxs_grid[(aux[0] >> (8 * k)) & 0xFF];
        const uint8_t signs = t.ksigns_iq2xs[(aux[1] >> (7 * k)) & 127];
        for (int j = 0; j < 8; ++j) {
          const int v = static_cast<int>((grid >> (8 * j)) & 0xFF);
          out[8 * k + j] = static_cast<int8_t>(signs & (1u << j) ? -v : v);
        }
      }
    }
  }
}

// The 32 activation quants that unit u of a weight row of type T meets, in the activation row the
// device matmul quantizes for T (device_ops_matmul.h: split Q8_0 rows of `units` blocks, Q8_0
// blocks, or Q8_K blocks).
template <GgmlType T>
V4_HD inline const int8_t* unit_activation_i8(const uint8_t* a_row, int64_t u) {
  if constexpr (T == GgmlType::Q8_0) {
    return reinterpret_cast<const int8_t*>(a_row + u * kQK8_0);
  } else if constexpr (T == GgmlType::MXFP4) {
    return reinterpret_cast<const BlockQ8_0*>(a_row)[u].qs;
  } else {
    return reinterpret_cast<const BlockQ8K*>(a_row)[u / 8].qs + 32 * (u % 8);
  }
}

// The float value unit u adds to a lane's partial sum, from its integer sum: what the lane loops
// of device_ops_matmul.h add for the unit (Q8_0: its block sum times both scales, as the lane
// loop's own Q8_0 branch computes it).
template <GgmlType T>
V4_HD inline float unit_finish(const uint8_t* w_row, const uint8_t* a_row, int64_t units, int64_t u,
                               int32_t isum) {
  if constexpr (T == GgmlType::Q8_0) {
    const float dw = fp16_to_fp32(reinterpret_cast<const BlockQ8_0*>(w_row)[u].d);
    uint16_t da;
    memcpy(&da, a_row + units * kQK8_0 + 2 * u, 2);
    return isum * (dw * fp16_to_fp32(da));
  } else if constexpr (T == GgmlType::MXFP4) {
    return finish_mxfp4(reinterpret_cast<const BlockMXFP4*>(w_row)[u],
                        reinterpret_cast<const BlockQ8_0*>(a_row)[u].d, isum);
  } else {
    const int64_t b = u / 8;
    const int g = static_cast<int>(u % 8);
    const BlockQ8K& y = reinterpret_cast<const BlockQ8K*>(a_row)[b];
    if constexpr (T == GgmlType::Q2_K) {
      return finish_q2_k(reinterpret_cast<const BlockQ2K*>(w_row)[b], g, y.d, y.bsums + 2 * g,
                         isum);
    } else if constexpr (T == GgmlType::Q4_K) {
      return finish_k4(reinterpret_cast<const BlockQ4K*>(w_row)[b], g, y.d, y.bsums + 2 * g, isum);
    } else if constexpr (T == GgmlType::Q5_K) {
      return finish_k4(reinterpret_cast<const BlockQ5K*>(w_row)[b], g, y.d, y.bsums + 2 * g, isum);
    } else {
      static_assert(T == GgmlType::IQ2_XXS, "a format without int8 units");
      return finish_iq2_xxs(reinterpret_cast<const BlockIQ2XXS*>(w_row)[b], g, y.d, isum);
    }
  }
}

}  // namespace v4::kernels
