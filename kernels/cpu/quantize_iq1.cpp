// Encoders of IQ1_S and IQ1_M (spec §6): value = dl·(grid + δ) with grid rows of 8 values in
// {−1, 0, +1} (iq1s_grid, 2048 rows), δ = ±0.125 and dl = d·(2s + 1), s a 3-bit sub-scale.
// IQ1_S: one s and one δ per 32 values. IQ1_M: one s per 16 values, one δ per 8 values.
//
// Not ggml's quantizer (importance-weighted, with neighbour tables): a per-unit nearest-grid
// search with a least-squares scale, then block-level rounding of the unit scales to 3 bits
// with a ±1 refinement. Quality, not bit-exactness, is the contract here.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/half.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_rounding.h"
#include "kernels/cpu/quant_tables.h"
#include "kernels/cpu/quantize_rows.h"

namespace v4::kernels {
namespace {

constexpr int kGridRows = 2048;
constexpr float kDelta = 0.125f;  // IQ1S_DELTA = IQ1M_DELTA

// iq1s_grid unpacked to floats, with each row's Σg and Σg².
struct TernaryGrid {
  float values[kGridRows][8];
  float sum[kGridRows];
  float norm2[kGridRows];

  TernaryGrid() {
    for (int r = 0; r < kGridRows; ++r) {
      sum[r] = norm2[r] = 0;
      for (int j = 0; j < 8; ++j) {
        values[r][j] = static_cast<int8_t>((iq1s_grid[r] >> (8 * j)) & 0xFF);
        sum[r] += values[r][j];
        norm2[r] += values[r][j] * values[r][j];
      }
    }
  }
};

const TernaryGrid& ternary_grid() {
  static const TernaryGrid grid;
  return grid;
}

// One octet of input with its dot products against every grid row (they do not depend on the
// scale or δ, so each candidate scale costs one pass over precomputed numbers).
struct Octet {
  float dot[kGridRows];
  float sum_x = 0, sum_x2 = 0;
};

void prepare_octet(const TernaryGrid& grid, const float* x, Octet* octet) {
  for (int j = 0; j < 8; ++j) {
    octet->sum_x += x[j];
    octet->sum_x2 += x[j] * x[j];
  }
  for (int r = 0; r < kGridRows; ++r) {
    float dot = 0;
    for (int j = 0; j < 8; ++j) dot += grid.values[r][j] * x[j];
    octet->dot[r] = dot;
  }
}

// A row and δ sign for one octet, with the sums the least-squares scale needs:
// Σ(g+δ)² ("a") and Σ(g+δ)·x ("b"); error at scale dl is dl²·a − 2dl·b + Σx².
struct OctetCode {
  int row = 0;
  bool negative_delta = false;
  float a = 0, b = 0;
};

OctetCode code_for(const TernaryGrid& grid, const Octet& octet, int row, bool negative_delta) {
  const float delta = negative_delta ? -kDelta : kDelta;
  OctetCode code;
  code.row = row;
  code.negative_delta = negative_delta;
  code.a = grid.norm2[row] + 2 * delta * grid.sum[row] + 8 * delta * delta;
  code.b = octet.dot[row] + delta * octet.sum_x;
  return code;
}

// Best row for an octet at scale dl; δ fixed, or free when allow_both_deltas.
OctetCode best_code(const TernaryGrid& grid, const Octet& octet, float dl, bool negative_delta,
                    bool allow_both_deltas) {
  OctetCode best;
  float best_score = std::numeric_limits<float>::infinity();
  for (int sign = 0; sign < 2; ++sign) {
    const bool negative = allow_both_deltas ? sign == 1 : negative_delta;
    if (!allow_both_deltas && sign == 1) break;
    for (int r = 0; r < kGridRows; ++r) {
      const OctetCode code = code_for(grid, octet, r, negative);
      const float score = dl * dl * code.a - 2 * dl * code.b;
      if (score < best_score) {
        best_score = score;
        best = code;
      }
    }
  }
  return best;
}

// A unit: the octets sharing one sub-scale. shared_delta: one δ for the whole unit (IQ1_S).
struct UnitFit {
  float error = std::numeric_limits<float>::infinity();
  OctetCode codes[4];
};

UnitFit fit_at_scale(const TernaryGrid& grid, const Octet* octets, int n, float dl,
                     bool shared_delta) {
  UnitFit best;
  for (int sign = 0; sign < (shared_delta ? 2 : 1); ++sign) {
    UnitFit fit;
    fit.error = 0;
    for (int k = 0; k < n; ++k) {
      fit.codes[k] = best_code(grid, octets[k], dl, sign == 1, !shared_delta);
      fit.error += dl * dl * fit.codes[k].a - 2 * dl * fit.codes[k].b + octets[k].sum_x2;
    }
    if (fit.error < best.error) best = fit;
  }
  return best;
}

// Best real dl of a unit: candidates max|x|·[0.3, 1.5] (the largest code magnitude is
// 1.125·dl), rows picked per candidate, the least-squares dl = Σb/Σa refit, rows re-picked.
float fit_unit_scale(const TernaryGrid& grid, const Octet* octets, const float* x, int n,
                     bool shared_delta) {
  float amax = 0;
  for (int j = 0; j < 8 * n; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  if (amax < kGroupMaxEps) return 0;
  float best_scale = amax, best_error = std::numeric_limits<float>::infinity();
  for (int c = 0; c < 25; ++c) {
    const UnitFit fit = fit_at_scale(grid, octets, n, amax * (0.3f + 0.05f * c), shared_delta);
    float a = 0, b = 0;
    for (int k = 0; k < n; ++k) {
      a += fit.codes[k].a;
      b += fit.codes[k].b;
    }
    if (b <= 0 || a <= 0) continue;
    const float refit = b / a;
    const UnitFit refitted = fit_at_scale(grid, octets, n, refit, shared_delta);
    if (refitted.error < best_error) {
      best_error = refitted.error;
      best_scale = refit;
    }
  }
  return best_scale;
}

// Fills the octets of one unit (n octets starting at x).
void prepare_unit(const TernaryGrid& grid, const float* x, int n, Octet* octets) {
  for (int k = 0; k < n; ++k) {
    octets[k] = Octet{};
    prepare_octet(grid, x + 8 * k, &octets[k]);
  }
}

// Rounds a block's unit scales to d (fp16) and 3-bit s (dl = d·(2s+1), at most 15·d), trying
// each unit's nearest s and its neighbours with codes re-picked at the rounded scale.
// Returns d16 (0 for an all-zero block, with sub_scales 0 and default codes). The per-unit dot
// products (32 KiB) are recomputed in the second pass rather than kept for the whole block.
uint16_t quantize_units(const TernaryGrid& grid, const float* x, int units, int octets_per_unit,
                        bool shared_delta, uint8_t* sub_scales, UnitFit* fits) {
  Octet octets[4];
  const int unit_size = 8 * octets_per_unit;
  float scales[kQK_K / 16];
  float max_scale = 0;
  for (int u = 0; u < units; ++u) {
    prepare_unit(grid, x + unit_size * u, octets_per_unit, octets);
    scales[u] = fit_unit_scale(grid, octets, x + unit_size * u, octets_per_unit, shared_delta);
    max_scale = std::fmax(max_scale, scales[u]);
  }
  const uint16_t d16 = fp32_to_fp16(max_scale / 15);
  const float d = fp16_to_fp32(d16);
  for (int u = 0; u < units; ++u) {
    sub_scales[u] = 0;
    fits[u] = UnitFit{};
  }
  if (d == 0) return 0;
  for (int u = 0; u < units; ++u) {
    prepare_unit(grid, x + unit_size * u, octets_per_unit, octets);
    // Clamped first: with d in fp16's subnormal range scales[u]/d can stray far past 15.
    const int nearest = std::clamp(nearest_int((scales[u] / d - 1) / 2), 0, 7);
    for (int s = nearest - 1; s <= nearest + 1; ++s) {
      if (s < 0 || s > 7) continue;
      const float dl = d * (2 * s + 1);  // as dequantization computes it
      const UnitFit fit = fit_at_scale(grid, octets, octets_per_unit, dl, shared_delta);
      if (fit.error < fits[u].error) {
        fits[u] = fit;
        sub_scales[u] = static_cast<uint8_t>(s);
      }
    }
  }
  return d16;
}

}  // namespace

// IQ1_S: 8 units of 32. qs[4g+k] = low index byte; qh[g] = high index bits (3 per octet),
// s in bits 12-14, δ negative in bit 15.
void quantize_row_iq1_s(const float* x, BlockIQ1S* y, int64_t n) {
  const TernaryGrid& grid = ternary_grid();
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    uint8_t sub_scales[8];
    UnitFit fits[8];
    y[i].d = quantize_units(grid, x, 8, 4, true, sub_scales, fits);
    for (int g = 0; g < 8; ++g) {
      uint16_t qh = static_cast<uint16_t>(sub_scales[g] << 12);
      if (fits[g].codes[0].negative_delta) qh |= 0x8000;
      for (int k = 0; k < 4; ++k) {
        const int row = fits[g].codes[k].row;
        y[i].qs[4 * g + k] = static_cast<uint8_t>(row & 0xFF);
        qh |= static_cast<uint16_t>((row >> 8) << (3 * k));
      }
      y[i].qh[g] = qh;
    }
  }
}

// IQ1_M: 16 units of 16. qh[2g + k/2] nibble k%2 = high index bits | δ-negative << 3; the four
// u16 scale words hold the 3-bit s of units 4w..4w+3 in bits 0-11 and nibble w of d16 on top.
void quantize_row_iq1_m(const float* x, BlockIQ1M* y, int64_t n) {
  const TernaryGrid& grid = ternary_grid();
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    uint8_t sub_scales[16];
    UnitFit fits[16];
    const uint16_t d16 = quantize_units(grid, x, 16, 2, false, sub_scales, fits);
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int k = 0; k < kQK_K / 8; ++k) {
      const OctetCode& code = fits[k / 2].codes[k % 2];
      y[i].qs[k] = static_cast<uint8_t>(code.row & 0xFF);
      const int nibble = (code.row >> 8) | (code.negative_delta ? 0x8 : 0);
      y[i].qh[k / 2] |= static_cast<uint8_t>(nibble << (4 * (k % 2)));
    }
    uint16_t words[4];
    for (int w = 0; w < 4; ++w) {
      words[w] = static_cast<uint16_t>(((d16 >> (4 * w)) & 0xF) << 12);
      for (int u = 0; u < 4; ++u)
        words[w] |= static_cast<uint16_t>(sub_scales[4 * w + u] << (3 * u));
    }
    std::memcpy(y[i].scales, words, sizeof(words));
  }
}

}  // namespace v4::kernels
