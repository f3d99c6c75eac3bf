// A dot-product unit of a weight row as 32 signed bytes, for the integer tensor-core product
// (model/backend/device/device_ops_matmul_mma.h): the unit's integer sums are Σ w[l]·a[l] over
// those bytes and the unit's 32 activation quants — over all 32, or over each half of 16 for the
// formats that scale their halves apart — and the finish_* functions of quant_dot.h turn them
// into the float the lane loops there compute for the unit. Every quantized weight type has this
// form: the bytes are the codes (Q8_0, Q4_K, Q5_K, Q6_K), the doubled E2M1 values (MXFP4), the
// 2-bit codes times their 4-bit scale (Q2_K, at most 45), the signed grid values (IQ2_XXS,
// IQ2_XS, IQ1_S), or 8·grid value + delta sign (IQ1_M, at most 9).
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
         t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K ||
         t == GgmlType::IQ2_XXS || t == GgmlType::IQ2_XS || t == GgmlType::IQ1_S ||
         t == GgmlType::IQ1_M;
}

// Integer sums per unit: 2 where the halves of 16 have scales of their own.
constexpr int unit_sums(GgmlType t) {
  return t == GgmlType::Q6_K || t == GgmlType::IQ2_XS || t == GgmlType::IQ1_M ? 2 : 1;
}

// An IQ2 octet: eight unsigned grid values with their signs.
V4_HD inline void iq2_octet_i8(uint64_t grid, uint8_t signs, int8_t* out) {
  for (int j = 0; j < 8; ++j) out[j] = static_cast<int8_t>(iq2_octet_value(grid, signs, j));
}

// Unit u of a weight row as 32 signed bytes, in the order of the unit's activation quants
// (`q8_0_split`: a Q8_0 row in the split layout, see load_q8_0_split_quants).
template <GgmlType T>
V4_HD inline void unit_weights_i8(const uint8_t* w_row, int64_t u, const QuantTables& t,
                                  int8_t* out, bool q8_0_split = false) {
  if constexpr (T == GgmlType::Q8_0) {
    if (q8_0_split) {
      int32_t w[kQK8_0 / 4];
      load_q8_0_split_quants(w_row, u, w);  // two 16-byte loads on the device
      memcpy(out, w, kQK8_0);
    } else {
      memcpy(out, reinterpret_cast<const BlockQ8_0*>(w_row)[u].qs, kQK8_0);
    }
  } else if constexpr (T == GgmlType::MXFP4) {
    uint32_t v[8];
    uint8_t e;
    uint32_t q[4];
    load_mxfp4_block(w_row, u, &e, q);
    mxfp4_block_values(q, v);
    memcpy(out, v, 32);
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
    } else if constexpr (T == GgmlType::Q6_K) {
      const BlockQ6K& x = reinterpret_cast<const BlockQ6K*>(w_row)[b];
      for (int l = 0; l < 32; ++l) out[l] = static_cast<int8_t>(q6_k_code(x, g, l));
    } else if constexpr (T == GgmlType::IQ2_XS) {
      const BlockIQ2XS& x = reinterpret_cast<const BlockIQ2XS*>(w_row)[b];
      for (int k = 0; k < 4; ++k) {
        const Iq2Octet o = iq2_xs_octet(x, g, k, t);
        iq2_octet_i8(o.grid, o.signs, out + 8 * k);
      }
    } else if constexpr (T == GgmlType::IQ1_S) {
      const BlockIQ1S& x = reinterpret_cast<const BlockIQ1S*>(w_row)[b];
      for (int k = 0; k < 4; ++k) {
        const uint64_t grid = iq1_s_octet(x, g, k, t);
        for (int j = 0; j < 8; ++j) out[8 * k + j] = static_cast<int8_t>(iq1_octet_value(grid, j));
      }
    } else if constexpr (T == GgmlType::IQ1_M) {
      const BlockIQ1M& x = reinterpret_cast<const BlockIQ1M*>(w_row)[b];
      for (int k = 0; k < 4; ++k) {
        const Iq1mOctet o = iq1_m_octet(x, g, k, t);
        for (int j = 0; j < 8; ++j) {
          out[8 * k + j] = static_cast<int8_t>(8 * iq1_octet_value(o.grid, j) + o.delta);
        }
      }
    } else if constexpr (T == GgmlType::IQ2_XXS) {
      const BlockIQ2XXS& x = reinterpret_cast<const BlockIQ2XXS*>(w_row)[b];
      uint32_t aux[2];
      memcpy(aux, x.qs + 4 * g, sizeof(aux));
      for (int k = 0; k < 4; ++k) {
        const Iq2Octet o = iq2_xxs_octet(aux, k, t);
        iq2_octet_i8(o.grid, o.signs, out + 8 * k);
      }
    }
  }
}

// The 32 activation quants that unit u of a weight row of type T meets, in the activation row the
// device matmul quantizes for T (device_ops_matmul.h: split Q8_0 rows of `units` blocks, Q8_0
// blocks, or Q8_K blocks).
template <GgmlType T>
V4_HD inline const int8_t* unit_activation_i8(const uint8_t* a_row, int64_t u) {
  if constexpr (T == GgmlType::Q8_0 || T == GgmlType::MXFP4) {
    return reinterpret_cast<const int8_t*>(a_row + u * kQK8_0);
  } else {
    return reinterpret_cast<const BlockQ8K*>(a_row)[u / 8].qs + 32 * (u % 8);
  }
}

// The float value unit u adds to a lane's partial sum, from its integer sums s (unit_sums(T) of
// them): through the same finish_* function, what the lane loops of device_ops_matmul.h and
// quant_dot.h add for the unit.
template <GgmlType T>
V4_HD inline float unit_finish(const uint8_t* w_row, const uint8_t* a_row, int64_t units, int64_t u,
                               const int32_t* s, bool q8_0_split = false) {
  if constexpr (T == GgmlType::Q8_0) {
    return finish_q8_0(fp16_to_fp32(q8_0_scale(w_row, units, u, q8_0_split)),
                       q8_0_scale(a_row, units, u, true), s[0]);
  } else if constexpr (T == GgmlType::MXFP4) {
    return finish_mxfp4(reinterpret_cast<const BlockMXFP4*>(w_row)[u].e,
                        q8_0_scale(a_row, units, u, true), s[0]);
  } else {
    const int64_t b = u / 8;
    const int g = static_cast<int>(u % 8);
    const BlockQ8K& y = reinterpret_cast<const BlockQ8K*>(a_row)[b];
    const int16_t* bsums = y.bsums + 2 * g;
    if constexpr (T == GgmlType::Q2_K) {
      return finish_q2_k(reinterpret_cast<const BlockQ2K*>(w_row)[b], g, y.d, bsums, s[0]);
    } else if constexpr (T == GgmlType::Q4_K) {
      return finish_k4(reinterpret_cast<const BlockQ4K*>(w_row)[b], g, y.d, bsums, s[0]);
    } else if constexpr (T == GgmlType::Q5_K) {
      return finish_k4(reinterpret_cast<const BlockQ5K*>(w_row)[b], g, y.d, bsums, s[0]);
    } else if constexpr (T == GgmlType::Q6_K) {
      return finish_q6_k(reinterpret_cast<const BlockQ6K*>(w_row)[b], g, y.d, s[0], s[1]);
    } else if constexpr (T == GgmlType::IQ2_XXS) {
      return finish_iq2_xxs(reinterpret_cast<const BlockIQ2XXS*>(w_row)[b], g, y.d, s[0]);
    } else if constexpr (T == GgmlType::IQ2_XS) {
      return finish_iq2_xs(reinterpret_cast<const BlockIQ2XS*>(w_row)[b], g, y.d, s[0], s[1]);
    } else if constexpr (T == GgmlType::IQ1_S) {
      return finish_iq1_s(reinterpret_cast<const BlockIQ1S*>(w_row)[b], g, y.d, bsums, s[0]);
    } else {
      static_assert(T == GgmlType::IQ1_M, "a format without int8 units");
      return finish_iq1_m(reinterpret_cast<const BlockIQ1M*>(w_row)[b], g, y.d, s[0], s[1]);
    }
  }
}

}  // namespace v4::kernels
