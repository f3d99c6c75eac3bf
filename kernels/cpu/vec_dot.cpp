// Reference dot products of one quantized weight row with one activation row (spec §6), in
// ggml's generic (scalar) form: integer sums inside a block, one fp32 scale per block or
// sub-block, fp32 accumulation across blocks — ggml_vec_dot_*_generic in ggml-cpu/quants.c,
// including their lane structure, so results match ggml's scalar path. Float weights take F32
// activations and accumulate in 32 float lanes (kernels/cpu/float_dot_lanes.h), as ggml's SIMD
// float dots accumulate in float, so that the SIMD kernels match them bit for bit.
#include <cassert>
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/float_dot_lanes.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_tables.h"

namespace v4::kernels {
namespace {

template <class Decode>
float dot_float(const void* w, const float* a, int64_t n, Decode decode) {
  float lanes[kFloatDotLanes] = {};
  return finish_float_dot(lanes, 0, n, [&](int64_t i) { return decode(w, i) * a[i]; });
}

float dot_q8_0(const BlockQ8_0* x, const BlockQ8_0* y, int64_t nb) {
  float sumf = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQK8_0; ++j) sumi += x[i].qs[j] * y[i].qs[j];
    sumf += sumi * (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
  }
  return sumf;
}

float dot_mxfp4(const BlockMXFP4* x, const BlockQ8_0* y, int64_t nb) {
  static_assert(kQK_MXFP4 == kQK8_0);
  float sumf = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(y[i].d) * e8m0_to_fp32_half(x[i].e);
    int sumi1 = 0, sumi2 = 0;
    for (int j = 0; j < kQK_MXFP4 / 2; ++j) {
      sumi1 += y[i].qs[j] * kvalues_mxfp4[x[i].qs[j] & 0xF];
      sumi2 += y[i].qs[j + kQK_MXFP4 / 2] * kvalues_mxfp4[x[i].qs[j] >> 4];
    }
    sumf += d * (sumi1 + sumi2);
  }
  return sumf;
}

// Q2_K: the min term uses the activation's per-16 sums (bsums), so it costs 16 products.
float dot_q2_k(const BlockQ2K* x, const BlockQ8K* y, int64_t nb) {
  float sumf = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* q2 = x[i].qs;
    const int8_t* q8 = y[i].qs;
    const uint8_t* sc = x[i].scales;
    int summs = 0;
    for (int j = 0; j < 16; ++j) summs += y[i].bsums[j] * (sc[j] >> 4);
    const float dall = y[i].d * fp16_to_fp32(x[i].d);
    const float dmin = y[i].d * fp16_to_fp32(x[i].dmin);
    int isum = 0, is = 0;
    for (int half = 0; half < kQK_K / 128; ++half, q2 += 32) {
      for (int shift = 0; shift < 8; shift += 2, q8 += 32) {
        for (int lane0 = 0; lane0 < 32; lane0 += 16) {
          const int d = sc[is++] & 0xF;
          int isuml = 0;
          for (int l = lane0; l < lane0 + 16; ++l) isuml += q8[l] * ((q2[l] >> shift) & 3);
          isum += d * isuml;
        }
      }
    }
    sumf += dall * isum - dmin * summs;
  }
  return sumf;
}

// Q4_K and Q5_K: codes unpacked to int8 (Q5_K adds the fifth bit), products accumulated in 8
// int32 lanes with the sub-block scale, lanes scaled per block into 8 float sums (ggml's shape).
template <class Block>
void unpack_k4_codes(const Block& x, int8_t* a);

template <>
void unpack_k4_codes(const BlockQ4K& x, int8_t* a) {
  const uint8_t* q4 = x.qs;
  for (int j = 0; j < kQK_K / 64; ++j, q4 += 32, a += 64) {
    for (int l = 0; l < 32; ++l) a[l] = static_cast<int8_t>(q4[l] & 0xF);
    for (int l = 0; l < 32; ++l) a[l + 32] = static_cast<int8_t>(q4[l] >> 4);
  }
}

template <>
void unpack_k4_codes(const BlockQ5K& x, int8_t* a) {
  const uint8_t* q4 = x.qs;
  unsigned m = 1;
  for (int j = 0; j < kQK_K / 64; ++j, q4 += 32, a += 64, m <<= 2) {
    for (int l = 0; l < 32; ++l) a[l] = static_cast<int8_t>((q4[l] & 0xF) + (x.qh[l] & m ? 16 : 0));
    for (int l = 0; l < 32; ++l) {
      a[l + 32] = static_cast<int8_t>((q4[l] >> 4) + (x.qh[l] & (m << 1) ? 16 : 0));
    }
  }
}

template <class Block>
float dot_k4(const Block* x, const BlockQ8K* y, int64_t nb) {
  int8_t aux8[kQK_K];
  float sums[8] = {};
  float sumf = 0;
  for (int64_t i = 0; i < nb; ++i) {
    unpack_k4_codes(x[i], aux8);
    uint8_t scales[8], mins[8];
    for (int j = 0; j < 8; ++j) unpack_scale_min_k4(j, x[i].scales, &scales[j], &mins[j]);
    int sumi = 0;
    for (int j = 0; j < kQK_K / 16; ++j) sumi += y[i].bsums[j] * mins[j / 2];
    int32_t aux32[8] = {};
    const int8_t* q8 = y[i].qs;
    const int8_t* a = aux8;
    for (int j = 0; j < kQK_K / 32; ++j) {
      const int32_t scale = scales[j];
      for (int chunk = 0; chunk < 4; ++chunk, q8 += 8, a += 8) {
        for (int l = 0; l < 8; ++l) aux32[l] += scale * static_cast<int16_t>(q8[l] * a[l]);
      }
    }
    const float d = fp16_to_fp32(x[i].d) * y[i].d;
    for (int l = 0; l < 8; ++l) sums[l] += d * aux32[l];
    const float dmin = fp16_to_fp32(x[i].dmin) * y[i].d;
    sumf -= dmin * sumi;
  }
  for (int l = 0; l < 8; ++l) sumf += sums[l];
  return sumf;
}

float dot_q6_k(const BlockQ6K* x, const BlockQ8K* y, int64_t nb) {
  int8_t aux8[kQK_K];
  float sums[8] = {};
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* q4 = x[i].ql;
    const uint8_t* qh = x[i].qh;
    int8_t* a = aux8;
    for (int j = 0; j < kQK_K; j += 128, a += 128, q4 += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        a[l + 0] = static_cast<int8_t>(((q4[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
        a[l + 32] = static_cast<int8_t>(((q4[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
        a[l + 64] = static_cast<int8_t>(((q4[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        a[l + 96] = static_cast<int8_t>(((q4[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
    int32_t aux32[8] = {};
    const int8_t* q8 = y[i].qs;
    a = aux8;
    for (int j = 0; j < kQK_K / 16; ++j) {
      const int scale = x[i].scales[j];
      for (int chunk = 0; chunk < 2; ++chunk, q8 += 8, a += 8) {
        for (int l = 0; l < 8; ++l) aux32[l] += scale * static_cast<int16_t>(q8[l] * a[l]);
      }
    }
    const float d = fp16_to_fp32(x[i].d) * y[i].d;
    for (int l = 0; l < 8; ++l) sums[l] += d * aux32[l];
  }
  float sumf = 0;
  for (int l = 0; l < 8; ++l) sumf += sums[l];
  return sumf;
}

// Σ grid·q8·sign over one octet of an IQ2 grid row.
int iq2_octet(uint64_t row, uint8_t signs, const int8_t* q8) {
  int sum = 0;
  for (int j = 0; j < 8; ++j) {
    const int g = static_cast<int>((row >> (8 * j)) & 0xFF);
    sum += g * q8[j] * (signs & kmask_iq2xs[j] ? -1 : 1);
  }
  return sum;
}

// IQ2: db = d·(0.5 + n)·0.25 = d·(2n + 1)·0.125, so integer sums use 2n+1 and 0.125 is applied
// once at the end (ggml's form).
float dot_iq2_xxs(const BlockIQ2XXS* x, const BlockQ8K* y, int64_t nb) {
  float sumf = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d) * y[i].d;
    const int8_t* q8 = y[i].qs;
    int32_t bsum = 0;
    for (int g = 0; g < kQK_K / 32; ++g) {
      uint32_t aux[2];
      std::memcpy(aux, x[i].qs + 4 * g, sizeof(aux));
      const uint32_t ls = 2 * (aux[1] >> 28) + 1;
      int32_t sumi = 0;
      for (int k = 0; k < 4; ++k, q8 += 8) {
        sumi += iq2_octet(iq2xxs_grid[(aux[0] >> (8 * k)) & 0xFF],
                          ksigns_iq2xs[(aux[1] >> (7 * k)) & 127], q8);
      }
      bsum += sumi * static_cast<int32_t>(ls);
    }
    sumf += d * bsum;
  }
  return 0.125f * sumf;
}

float dot_iq2_xs(const BlockIQ2XS* x, const BlockQ8K* y, int64_t nb) {
  float sumf = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d) * y[i].d;
    const int8_t* q8 = y[i].qs;
    int32_t bsum = 0;
    for (int g = 0; g < kQK_K / 32; ++g) {
      const int ls[2] = {2 * (x[i].scales[g] & 0xF) + 1, 2 * (x[i].scales[g] >> 4) + 1};
      for (int half = 0; half < 2; ++half) {
        int32_t sumi = 0;
        for (int k = 2 * half; k < 2 * half + 2; ++k, q8 += 8) {
          const uint16_t code = x[i].qs[4 * g + k];
          sumi += iq2_octet(iq2xs_grid[code & 511], ksigns_iq2xs[code >> 9], q8);
        }
        bsum += sumi * ls[half];
      }
    }
    sumf += d * bsum;
  }
  return 0.125f * sumf;
}

// IQ1: Σ dl·(g + δ)·q8 = dl·(Σ g·q8 + δ·Σ q8); the δ part uses bsums (IQ1_S) or the octet's sum
// (IQ1_M), with δ = ±0.125 applied once per block.
int iq1_octet(uint64_t row, const int8_t* q8) {
  int sum = 0;
  for (int j = 0; j < 8; ++j) sum += q8[j] * static_cast<int8_t>((row >> (8 * j)) & 0xFF);
  return sum;
}

float dot_iq1_s(const BlockIQ1S* x, const BlockQ8K* y, int64_t nb) {
  float sumf = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const int8_t* q8 = y[i].qs;
    const uint8_t* qs = x[i].qs;
    int sumi = 0, sumi1 = 0;
    for (int g = 0; g < kQK_K / 32; ++g, qs += 4) {
      const uint16_t qh = x[i].qh[g];
      const int ls = 2 * ((qh >> 12) & 7) + 1;
      const int delta = qh & 0x8000 ? -1 : 1;
      int lsum = 0;
      for (int k = 0; k < 4; ++k, q8 += 8) {
        lsum += iq1_octet(iq1s_grid[qs[k] | (((qh >> (3 * k)) & 7) << 8)], q8);
      }
      sumi += ls * lsum;
      sumi1 += ls * delta * (y[i].bsums[2 * g] + y[i].bsums[2 * g + 1]);
    }
    sumf += fp16_to_fp32(x[i].d) * y[i].d * (sumi + 0.125f * sumi1);
  }
  return sumf;
}

float dot_iq1_m(const BlockIQ1M* x, const BlockQ8K* y, int64_t nb) {
  float sumf = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const int8_t* q8 = y[i].qs;
    const uint8_t* qs = x[i].qs;
    const uint8_t* qh = x[i].qh;
    uint16_t sc[4];
    std::memcpy(sc, x[i].scales, sizeof(sc));
    int sumi1 = 0, sumi2 = 0;
    for (int g = 0; g < kQK_K / 32; ++g, qs += 4, qh += 2) {
      int sum1[2] = {0, 0}, sum2[2] = {0, 0};
      for (int k = 0; k < 4; ++k, q8 += 8) {
        const uint8_t nibble = (qh[k / 2] >> (4 * (k % 2))) & 0xF;
        int octet_sum = 0;
        for (int j = 0; j < 8; ++j) octet_sum += q8[j];
        sum1[k / 2] += iq1_octet(iq1s_grid[qs[k] | ((nibble & 7) << 8)], q8);
        sum2[k / 2] += octet_sum * (nibble & 0x8 ? -1 : 1);
      }
      const int ls1 = 2 * ((sc[g / 2] >> (6 * (g % 2) + 0)) & 0x7) + 1;
      const int ls2 = 2 * ((sc[g / 2] >> (6 * (g % 2) + 3)) & 0x7) + 1;
      sumi1 += sum1[0] * ls1 + sum1[1] * ls2;
      sumi2 += sum2[0] * ls1 + sum2[1] * ls2;
    }
    sumf += fp16_to_fp32(iq1m_block_scale_bits(sc)) * y[i].d * (sumi1 + 0.125f * sumi2);
  }
  return sumf;
}

}  // namespace

GgmlType vec_dot_activation_type(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::Q8_0:
    case GgmlType::MXFP4:
      return GgmlType::Q8_0;
    case GgmlType::Q2_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
    case GgmlType::IQ2_XXS:
    case GgmlType::IQ2_XS:
    case GgmlType::IQ1_S:
    case GgmlType::IQ1_M:
      return GgmlType::Q8_K;
    default:  // F32, F16, BF16 (and, meaninglessly, unsupported types: check can_dequantize)
      return GgmlType::F32;
  }
}

float vec_dot(GgmlType weight_type, const void* weight_row, const void* activation_row, int64_t n) {
  const int64_t nb = n / ggml_type_traits(weight_type).block_size;
  const auto* q8_0 = static_cast<const BlockQ8_0*>(activation_row);
  const auto* q8_k = static_cast<const BlockQ8K*>(activation_row);
  const auto* f32 = static_cast<const float*>(activation_row);
  switch (weight_type) {
    case GgmlType::F32:
      return dot_float(weight_row, f32, n,
                       [](const void* w, int64_t i) { return static_cast<const float*>(w)[i]; });
    case GgmlType::F16:
      return dot_float(weight_row, f32, n, [](const void* w, int64_t i) {
        return fp16_to_fp32(static_cast<const uint16_t*>(w)[i]);
      });
    case GgmlType::BF16:
      return dot_float(weight_row, f32, n, [](const void* w, int64_t i) {
        return bf16_to_fp32(static_cast<const uint16_t*>(w)[i]);
      });
    case GgmlType::Q8_0:
      return dot_q8_0(static_cast<const BlockQ8_0*>(weight_row), q8_0, nb);
    case GgmlType::MXFP4:
      return dot_mxfp4(static_cast<const BlockMXFP4*>(weight_row), q8_0, nb);
    case GgmlType::Q2_K:
      return dot_q2_k(static_cast<const BlockQ2K*>(weight_row), q8_k, nb);
    case GgmlType::Q4_K:
      return dot_k4(static_cast<const BlockQ4K*>(weight_row), q8_k, nb);
    case GgmlType::Q5_K:
      return dot_k4(static_cast<const BlockQ5K*>(weight_row), q8_k, nb);
    case GgmlType::Q6_K:
      return dot_q6_k(static_cast<const BlockQ6K*>(weight_row), q8_k, nb);
    case GgmlType::IQ2_XXS:
      return dot_iq2_xxs(static_cast<const BlockIQ2XXS*>(weight_row), q8_k, nb);
    case GgmlType::IQ2_XS:
      return dot_iq2_xs(static_cast<const BlockIQ2XS*>(weight_row), q8_k, nb);
    case GgmlType::IQ1_S:
      return dot_iq1_s(static_cast<const BlockIQ1S*>(weight_row), q8_k, nb);
    case GgmlType::IQ1_M:
      return dot_iq1_m(static_cast<const BlockIQ1M*>(weight_row), q8_k, nb);
    default:
      assert(false && "vec_dot: type not supported; check can_dequantize first");
      return 0;
  }
}

}  // namespace v4::kernels
