// Dequantization of the spec §6 weight formats, bit-exact with ggml's `dequantize_row_*` and
// gguf-py's `gguf.quants.dequantize`.
//
// Bit-exactness depends on the order of the float operations, so each loop keeps ggml's
// expression shape: e.g. Q4_K computes (d·sc)·code − (dmin·m), never d·(sc·code) or an FMA.
// GCC in ISO C++ mode (-std=c++20, CMAKE_CXX_EXTENSIONS OFF) does not contract a·b−c into an FMA
// (-ffp-contract=off is its ISO default), and x86-64 without -march has no FMA anyway.
#include <bit>
#include <cassert>
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_tables.h"

namespace v4::kernels {
namespace {

// fp16_to_fp32 without branches, so that the row loop vectorises (fp16_to_fp32's per-value
// branches held F16 rows to half of BF16's throughput). Same bits for all 65536 inputs (tested in
// quantize_test.cpp): exponent and mantissa shift into place and the exponent is rebiased by
// 127 − 15; exponent 31 (inf/NaN, payload and signalling bit kept) gets a further 128 − 16;
// exponent 0 (zero, subnormal) is computed exactly in float as 2^-14·(1 + m/1024) − 2^-14 =
// m·2^-24 (operands and result are normal floats, so DAZ/FTZ cannot interfere).
inline uint32_t fp16_bits_to_fp32_bits(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t shifted = static_cast<uint32_t>(h & 0x7FFFu) << 13;
  const uint32_t exp = shifted & 0x0F800000u;
  // All-ones masks rather than ?: so that GCC if-converts (a branch stops vectorisation).
  const uint32_t special = 0u - static_cast<uint32_t>(exp == 0x0F800000u);
  const uint32_t small = 0u - static_cast<uint32_t>(exp == 0);
  const uint32_t bits = shifted + ((127u - 15u) << 23) + (special & ((128u - 16u) << 23));
  const float subnormal = std::bit_cast<float>(bits + (1u << 23)) - 0x1p-14f;
  return ((bits & ~small) | (std::bit_cast<uint32_t>(subnormal) & small)) | sign;
}

void dequantize_f16(const uint16_t* x, float* y, int64_t n) {
  // Fixed-size chunks: a known trip count is what lets GCC vectorise at -O2.
  constexpr int kChunk = 16;
  int64_t i = 0;
  for (; i + kChunk <= n; i += kChunk) {
    uint32_t bits[kChunk];
    for (int k = 0; k < kChunk; ++k) bits[k] = fp16_bits_to_fp32_bits(x[i + k]);
    std::memcpy(y + i, bits, sizeof(bits));
  }
  for (; i < n; ++i) y[i] = std::bit_cast<float>(fp16_bits_to_fp32_bits(x[i]));
}

void dequantize_bf16(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(x[i]);
}

void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK8_0) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK8_0; ++j) y[j] = x[i].qs[j] * d;
  }
}

void dequantize_mxfp4(const BlockMXFP4* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_MXFP4) {
    const float d = e8m0_to_fp32_half(x[i].e);
    for (int j = 0; j < kQK_MXFP4 / 2; ++j) {  // split nibble order: j in low, j+16 in high
      y[j] = kvalues_mxfp4[x[i].qs[j] & 0x0F] * d;
      y[j + kQK_MXFP4 / 2] = kvalues_mxfp4[x[i].qs[j] >> 4] * d;
    }
  }
}

void dequantize_q2_k(const BlockQ2K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float min = fp16_to_fp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    int is = 0;
    for (int half = 0; half < kQK_K; half += 128) {
      for (int shift = 0; shift < 8; shift += 2) {
        // Two sub-blocks of 16 per (half, shift): lanes 0-15 and 16-31 of the same 32 bytes.
        for (int lane0 = 0; lane0 < 32; lane0 += 16) {
          const uint8_t sc = x[i].scales[is++];
          const float dl = d * (sc & 0xF);
          const float ml = min * (sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * ((q[lane0 + l] >> shift) & 3) - ml;
        }
      }
      q += 32;
    }
  }
}

void dequantize_q4_k(const BlockQ4K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float min = fp16_to_fp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    for (int s = 0; s < 8; s += 2, q += 32) {
      uint8_t sc, m;
      unpack_scale_min_k4(s, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      unpack_scale_min_k4(s + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

void dequantize_q5_k(const BlockQ5K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float min = fp16_to_fp32(x[i].dmin);
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    for (int s = 0; s < 8; s += 2, ql += 32) {
      uint8_t sc, m;
      unpack_scale_min_k4(s, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      unpack_scale_min_k4(s + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      const uint8_t u1 = static_cast<uint8_t>(1u << s), u2 = static_cast<uint8_t>(2u << s);
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
  }
}

void dequantize_q6_k(const BlockQ6K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int half = 0; half < kQK_K; half += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;  // (d·scale)·q, as ggml
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

// Element j of an 8-value grid row (byte j of the little-endian u64).
inline uint8_t grid_byte(uint64_t row, int j) { return static_cast<uint8_t>(row >> (8 * j)); }

void dequantize_iq2_xxs(const BlockIQ2XXS* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int g = 0; g < kQK_K / 32; ++g) {
      uint32_t aux[2];  // aux[0]: four grid indices; aux[1]: four 7-bit sign indices + scale
      std::memcpy(aux, x[i].qs + 4 * g, sizeof(aux));
      const float db = d * (0.5f + (aux[1] >> 28)) * 0.25f;
      for (int k = 0; k < 4; ++k, y += 8) {
        const uint64_t row = iq2xxs_grid[(aux[0] >> (8 * k)) & 0xFF];
        const uint8_t signs = ksigns_iq2xs[(aux[1] >> (7 * k)) & 127];
        for (int j = 0; j < 8; ++j) {
          y[j] = db * grid_byte(row, j) * (signs & kmask_iq2xs[j] ? -1.f : 1.f);
        }
      }
    }
  }
}

void dequantize_iq2_xs(const BlockIQ2XS* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int g = 0; g < kQK_K / 32; ++g) {
      const float db[2] = {d * (0.5f + (x[i].scales[g] & 0xF)) * 0.25f,
                           d * (0.5f + (x[i].scales[g] >> 4)) * 0.25f};
      for (int k = 0; k < 4; ++k, y += 8) {
        const uint16_t code = x[i].qs[4 * g + k];
        const uint64_t row = iq2xs_grid[code & 511];
        const uint8_t signs = ksigns_iq2xs[code >> 9];
        for (int j = 0; j < 8; ++j) {
          y[j] = db[k / 2] * grid_byte(row, j) * (signs & kmask_iq2xs[j] ? -1.f : 1.f);
        }
      }
    }
  }
}

// IQ1 grids hold int8 values in {−1, 0, +1}; IQ1S_DELTA = IQ1M_DELTA = 0.125 (spec §6).
inline constexpr float kIQ1Delta = 0.125f;
inline int8_t grid_int8(uint64_t row, int j) { return static_cast<int8_t>(grid_byte(row, j)); }

void dequantize_iq1_s(const BlockIQ1S* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const uint8_t* qs = x[i].qs;
    for (int g = 0; g < kQK_K / 32; ++g, qs += 4) {
      const uint16_t qh = x[i].qh[g];
      const float dl = d * (2 * ((qh >> 12) & 7) + 1);
      const float delta = qh & 0x8000 ? -kIQ1Delta : kIQ1Delta;
      for (int k = 0; k < 4; ++k, y += 8) {
        const uint64_t row = iq1s_grid[qs[k] | (((qh >> (3 * k)) & 7) << 8)];
        for (int j = 0; j < 8; ++j) y[j] = dl * (grid_int8(row, j) + delta);
      }
    }
  }
}

void dequantize_iq1_m(const BlockIQ1M* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    uint16_t sc[4];
    std::memcpy(sc, x[i].scales, sizeof(sc));
    const float d = fp16_to_fp32(iq1m_block_scale_bits(sc));
    const uint8_t* qs = x[i].qs;
    const uint8_t* qh = x[i].qh;
    for (int g = 0; g < kQK_K / 32; ++g, qs += 4, qh += 2) {
      const float dl[2] = {d * (2 * ((sc[g / 2] >> (6 * (g % 2) + 0)) & 0x7) + 1),
                           d * (2 * ((sc[g / 2] >> (6 * (g % 2) + 3)) & 0x7) + 1)};
      for (int k = 0; k < 4; ++k, y += 8) {
        const uint8_t nibble = (qh[k / 2] >> (4 * (k % 2))) & 0xF;
        const uint64_t row = iq1s_grid[qs[k] | ((nibble & 7) << 8)];
        const float delta = nibble & 0x8 ? -kIQ1Delta : kIQ1Delta;
        for (int j = 0; j < 8; ++j) y[j] = dl[k / 2] * (grid_int8(row, j) + delta);
      }
    }
  }
}

}  // namespace

bool can_dequantize(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q8_0:
    case GgmlType::Q2_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
    case GgmlType::IQ2_XXS:
    case GgmlType::IQ2_XS:
    case GgmlType::IQ1_S:
    case GgmlType::IQ1_M:
    case GgmlType::MXFP4:
      return true;
    default:
      return false;
  }
}

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  const int64_t nb = n / ggml_type_traits(type).block_size;
  assert(n % ggml_type_traits(type).block_size == 0);
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16:
      return dequantize_f16(static_cast<const uint16_t*>(src), dst, n);
    case GgmlType::BF16:
      return dequantize_bf16(static_cast<const uint16_t*>(src), dst, n);
    case GgmlType::Q8_0:
      return dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
    case GgmlType::Q2_K:
      return dequantize_q2_k(static_cast<const BlockQ2K*>(src), dst, nb);
    case GgmlType::Q4_K:
      return dequantize_q4_k(static_cast<const BlockQ4K*>(src), dst, nb);
    case GgmlType::Q5_K:
      return dequantize_q5_k(static_cast<const BlockQ5K*>(src), dst, nb);
    case GgmlType::Q6_K:
      return dequantize_q6_k(static_cast<const BlockQ6K*>(src), dst, nb);
    case GgmlType::IQ2_XXS:
      return dequantize_iq2_xxs(static_cast<const BlockIQ2XXS*>(src), dst, nb);
    case GgmlType::IQ2_XS:
      return dequantize_iq2_xs(static_cast<const BlockIQ2XS*>(src), dst, nb);
    case GgmlType::IQ1_S:
      return dequantize_iq1_s(static_cast<const BlockIQ1S*>(src), dst, nb);
    case GgmlType::IQ1_M:
      return dequantize_iq1_m(static_cast<const BlockIQ1M*>(src), dst, nb);
    case GgmlType::MXFP4:
      return dequantize_mxfp4(static_cast<const BlockMXFP4*>(src), dst, nb);
    default:
      assert(false && "dequantize_row: type not supported; check can_dequantize first");
  }
}

}  // namespace v4::kernels
