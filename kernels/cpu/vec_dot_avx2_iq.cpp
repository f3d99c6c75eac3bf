// AVX2 dot products of the IQ formats with 16-bit codes or 1-bit grids (IQ2_XS, IQ1_S, IQ1_M)
// against up to four Q8_K activation rows (vec_dot_avx2_kernels.h). Grid rows, signs and
// sub-block scales are gathered once per block for all rows; each row's block sums are exact
// integers (scales applied inside madd), then scaled in float as the reference
// (kernels/cpu/vec_dot.cpp) does.
#include <immintrin.h>

#include <array>
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_tables.h"
#include "kernels/cpu/vec_dot_avx2_kernels.h"

namespace v4::kernels::avx2 {
namespace {

constexpr int kGroups = kQK_K / 32;

V4_AVX2 inline __m256i four_octets(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  return _mm256_setr_epi64x(static_cast<int64_t>(a), static_cast<int64_t>(b),
                            static_cast<int64_t>(c), static_cast<int64_t>(d));
}

// int16 scale vector: octets 0-1 (the first 16 lanes) take `first`, octets 2-3 `second`.
V4_AVX2 inline __m256i half_scales(int first, int second) {
  return _mm256_setr_m128i(_mm_set1_epi16(static_cast<int16_t>(first)),
                           _mm_set1_epi16(static_cast<int16_t>(second)));
}

// Σ w·y·scale over 32 lanes of signed weights as 8 exact int32 lanes.
V4_AVX2 inline __m256i signed_dot_scaled(__m256i w, __m256i y, __m256i scale) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w)),
                           scale);
}

// IQ2_XS: 9-bit grid index and 7-bit sign index per octet, a 4-bit scale per 16 values.
template <int NT>
struct Iq2XsRows {
  V4_AVX2 static void run(const BlockIQ2XS* x, const BlockQ8K* const* y, int64_t nb, float* out) {
    const uint64_t* sign = iq2_sign_multipliers();
    auto multipliers = [sign](uint16_t code) { return static_cast<int64_t>(sign[code >> 9]); };
    float sumf[NT] = {};
    for (int64_t i = 0; i < nb; ++i) {
      __m256i grid[kGroups], signs[kGroups], scale[kGroups];
      for (int g = 0; g < kGroups; ++g) {
        const uint16_t* q = x[i].qs + 4 * g;
        grid[g] = four_octets(iq2xs_grid[q[0] & 511], iq2xs_grid[q[1] & 511],
                              iq2xs_grid[q[2] & 511], iq2xs_grid[q[3] & 511]);
        signs[g] = _mm256_setr_epi64x(multipliers(q[0]), multipliers(q[1]), multipliers(q[2]),
                                      multipliers(q[3]));
        scale[g] = half_scales(2 * (x[i].scales[g] & 0xF) + 1, 2 * (x[i].scales[g] >> 4) + 1);
      }
      const float xd = half_to_float(x[i].d);
      for (int t = 0; t < NT; ++t) {
        const BlockQ8K& yb = y[t][i];
        __m256i acc = _mm256_setzero_si256();
        for (int g = 0; g < kGroups; ++g) {
          const __m256i y8 = load32(yb.qs + 32 * g);
          const __m256i ys = _mm256_sign_epi8(y8, signs[g]);  // |q8| <= 127: no overflow
          // Grid values are unsigned (<= 43): |maddubs lane| <= 2·43·127, scale <= 31.
          acc =
              _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(grid[g], ys), scale[g]));
        }
        sumf[t] += xd * yb.d * hsum_i32(acc);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = 0.125f * sumf[t];
  }
};

// IQ1_S: 11-bit indices into a grid of −1/0/1 octets, one 3-bit scale and delta sign per 32.
template <int NT>
struct Iq1SRows {
  V4_AVX2 static void run(const BlockIQ1S* x, const BlockQ8K* const* y, int64_t nb, float* out) {
    float sumf[NT] = {};
    for (int64_t i = 0; i < nb; ++i) {
      __m256i grid[kGroups], scale[kGroups];
      int ls[kGroups], delta[kGroups];
      for (int g = 0; g < kGroups; ++g) {
        const uint8_t* qs = x[i].qs + 4 * g;
        const uint16_t qh = x[i].qh[g];
        auto row = [&](int k) { return iq1s_grid[qs[k] | (((qh >> (3 * k)) & 7) << 8)]; };
        grid[g] = four_octets(row(0), row(1), row(2), row(3));
        ls[g] = 2 * ((qh >> 12) & 7) + 1;
        delta[g] = qh & 0x8000 ? -1 : 1;
        scale[g] = _mm256_set1_epi16(static_cast<int16_t>(ls[g]));
      }
      const float xd = half_to_float(x[i].d);
      for (int t = 0; t < NT; ++t) {
        const BlockQ8K& yb = y[t][i];
        __m256i acc = _mm256_setzero_si256();
        int sumi1 = 0;
        for (int g = 0; g < kGroups; ++g) {
          acc = _mm256_add_epi32(acc, signed_dot_scaled(grid[g], load32(yb.qs + 32 * g), scale[g]));
          sumi1 += ls[g] * delta[g] * (yb.bsums[2 * g] + yb.bsums[2 * g + 1]);
        }
        const int sumi = hsum_i32(acc);
        sumf[t] += xd * yb.d * (sumi + 0.125f * sumi1);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = sumf[t];
  }
};

// IQ1_M: as IQ1_S with a 3-bit scale per 16 values and a delta sign per octet; the delta term
// uses each octet's own q8 sum.
template <int NT>
struct Iq1MRows {
  V4_AVX2 static void run(const BlockIQ1M* x, const BlockQ8K* const* y, int64_t nb, float* out) {
    const __m256i ones = _mm256_set1_epi8(1);
    float sumf[NT] = {};
    for (int64_t i = 0; i < nb; ++i) {
      uint16_t sc[4];
      std::memcpy(sc, x[i].scales, sizeof(sc));
      __m256i grid[kGroups], delta[kGroups], scale[kGroups];
      for (int g = 0; g < kGroups; ++g) {
        const uint8_t* qs = x[i].qs + 4 * g;
        const uint8_t* qh = x[i].qh + 2 * g;
        int64_t signs[4];
        uint64_t rows[4];
        for (int k = 0; k < 4; ++k) {
          const uint8_t nibble = (qh[k / 2] >> (4 * (k % 2))) & 0xF;
          rows[k] = iq1s_grid[qs[k] | ((nibble & 7) << 8)];
          signs[k] = nibble & 0x8 ? -1 : 0x0101010101010101ll;  // bytes of −1 or of +1
        }
        grid[g] = four_octets(rows[0], rows[1], rows[2], rows[3]);
        delta[g] = _mm256_setr_epi64x(signs[0], signs[1], signs[2], signs[3]);
        const int shift = 6 * (g % 2);
        scale[g] = half_scales(2 * ((sc[g / 2] >> shift) & 0x7) + 1,
                               2 * ((sc[g / 2] >> (shift + 3)) & 0x7) + 1);
      }
      const float d = half_to_float(iq1m_block_scale_bits(sc));
      for (int t = 0; t < NT; ++t) {
        const BlockQ8K& yb = y[t][i];
        __m256i acc1 = _mm256_setzero_si256(), acc2 = _mm256_setzero_si256();
        for (int g = 0; g < kGroups; ++g) {
          const __m256i y8 = load32(yb.qs + 32 * g);
          acc1 = _mm256_add_epi32(acc1, signed_dot_scaled(grid[g], y8, scale[g]));
          const __m256i signed_sums = _mm256_maddubs_epi16(ones, _mm256_sign_epi8(y8, delta[g]));
          acc2 = _mm256_add_epi32(acc2, _mm256_madd_epi16(signed_sums, scale[g]));
        }
        const int sumi1 = hsum_i32(acc1), sumi2 = hsum_i32(acc2);
        sumf[t] += d * yb.d * (sumi1 + 0.125f * sumi2);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = sumf[t];
  }
};

}  // namespace

const uint64_t* iq2_sign_multipliers() {
  static const auto table = [] {
    std::array<uint64_t, 128> out{};
    for (size_t i = 0; i < out.size(); ++i) {
      for (int j = 0; j < 8; ++j) {
        const uint64_t byte = ksigns_iq2xs[i] & kmask_iq2xs[j] ? 0xFF : 0x01;
        out[i] |= byte << (8 * j);
      }
    }
    return out;
  }();
  return table.data();
}

void iq2_xs_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out) {
  dispatch_rows<Iq2XsRows, BlockIQ2XS, BlockQ8K>(w, a, rows, nb, out);
}

void iq1_s_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out) {
  dispatch_rows<Iq1SRows, BlockIQ1S, BlockQ8K>(w, a, rows, nb, out);
}

void iq1_m_rows(const void* w, const void* const* a, int rows, int64_t nb, float* out) {
  dispatch_rows<Iq1MRows, BlockIQ1M, BlockQ8K>(w, a, rows, nb, out);
}

}  // namespace v4::kernels::avx2
