// Encoders of IQ2_XXS and IQ2_XS (spec §6): value = db·grid·sign with grid rows of 8 magnitudes
// in {8, 25, 43}, signs with an even number of minuses (ksigns_iq2xs) and a 4-bit scale nibble n
// per unit, db = d·(0.5 + n)·0.25.
//
// Not ggml's quantizer (which needs importance weights): a per-unit scale search with
// least-squares refits, then block-level rounding of the unit scales to nibbles with a ±1
// refinement. Rows are found through LatticeNeighbours (iq_grid_search.h, ggml's kmap/kneighbors
// idea) instead of scanning the grid: ~50× faster at ≤ +0.25% RMS error. Quality, not
// bit-exactness, is the contract here.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/half.h"
#include "kernels/cpu/iq_grid_search.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_rounding.h"
#include "kernels/cpu/quant_tables.h"
#include "kernels/cpu/quantize_rows.h"

namespace v4::kernels {
namespace {

// Candidate rows per off-grid lattice point (spec §6 grids are subsets of {8, 25, 43}^8; see
// iq_grid_search.h): the rows in its 2 nearest distance shells while searching unit scales, 3 for
// the final pick at the stored scale. On Gaussian data 1 / 2 / 3 shells throughout cost +3.6% /
// +0.6% / +0.1% RMS error over an exhaustive scan of the grid; 2 then 3 cost +0.25%.
constexpr int kSearchShells = 2;
constexpr int kFinalShells = 3;
constexpr int kLevels[3] = {8, 25, 43};
// Midpoints between the scaled levels, in units of the scale: 8|25 and 25|43.
constexpr float kLowerMid = 16.5f, kUpperMid = 34.0f;

// A magnitude grid unpacked to floats, with each row's squared norm and the lattice map.
template <int kRows>
struct MagnitudeGrid {
  float values[kRows][8];
  float norm2[kRows];
  LatticeNeighbours neighbours;

  explicit MagnitudeGrid(const uint64_t* packed)
      : neighbours(packed, kRows, kLevels, /*signed_bytes=*/false, kFinalShells) {
    for (int r = 0; r < kRows; ++r) {
      norm2[r] = 0;
      for (int j = 0; j < 8; ++j) {
        values[r][j] = static_cast<float>((packed[r] >> (8 * j)) & 0xFF);
        norm2[r] += values[r][j] * values[r][j];
      }
    }
  }
};

// Thread-safe lazy construction (function-local statics).
const MagnitudeGrid<256>& iq2xxs_float_grid() {
  static const MagnitudeGrid<256> grid(iq2xxs_grid);
  return grid;
}

const MagnitudeGrid<512>& iq2xs_float_grid() {
  static const MagnitudeGrid<512> grid(iq2xs_grid);
  return grid;
}

// 8 values with their signs folded out: x_j = ±t_j. The sign pattern must have an even number of
// minuses (bit 7 is implied by parity), so when x has an odd number of negatives the smallest
// |x_j| keeps the wrong sign and its target t_j becomes −|x_j| (the cheapest place to pay).
struct SignedOctet {
  float t[8];
  float t2;            // Σ t_j²
  uint8_t sign_index;  // bits 0-6 of the sign pattern, the index into ksigns_iq2xs
};

SignedOctet fold_signs(const float* x) {
  unsigned negative = 0;
  int smallest = 0;
  for (int j = 0; j < 8; ++j) {
    if (x[j] < 0) negative |= 1u << j;
    if (std::fabs(x[j]) < std::fabs(x[smallest])) smallest = j;
  }
  if (std::popcount(negative) % 2 != 0) negative ^= 1u << smallest;
  SignedOctet octet;
  octet.t2 = 0;
  for (int j = 0; j < 8; ++j) {
    octet.t[j] = (negative >> j) & 1 ? -x[j] : x[j];
    octet.t2 += octet.t[j] * octet.t[j];
  }
  octet.sign_index = static_cast<uint8_t>(negative & 127);
  return octet;
}

// Row minimising Σ (s·g − t)² = s²·|g|² − 2s·g·t + |t|², and that error: the exact minimum when
// t's nearest lattice point is a grid row, else the best of its neighbour candidates.
template <int kRows>
int best_row(const MagnitudeGrid<kRows>& grid, int shells, const SignedOctet& octet, float s,
             float* error) {
  const int point = lattice_index(octet.t, kLowerMid * s, kUpperMid * s);
  int best = 0;
  float best_score = std::numeric_limits<float>::infinity();
  for (const uint16_t r : grid.neighbours.candidates(point, shells)) {
    float dot = 0;
    for (int j = 0; j < 8; ++j) dot += grid.values[r][j] * octet.t[j];
    const float score = s * s * grid.norm2[r] - 2 * s * dot;
    if (score < best_score) {
      best_score = score;
      best = r;
    }
  }
  *error = best_score + octet.t2;
  return best;
}

// Squared error of a unit (n octets sharing one scale) at scale s; writes the chosen rows.
template <int kRows>
float unit_error(const MagnitudeGrid<kRows>& grid, int shells, const SignedOctet* octets, int n,
                 float s, int* rows) {
  float total = 0;
  for (int k = 0; k < n; ++k) {
    float error;
    rows[k] = best_row(grid, shells, octets[k], s, &error);
    total += error;
  }
  return total;
}

// Best real scale of a unit: for 8 candidate scales spanning "largest target on the largest grid
// value" ×[0.5, 1.55], pick rows, refit the least-squares scale Σg·t/Σg² for those rows, and keep
// the refit whose error |t|² − (Σg·t)²/Σg² (rows held fixed) is smallest. More candidates, or
// re-picking rows at each refit, changed the error by < 0.1% at 2–3× the cost: the nibble
// rounding in quantize_units dominates.
template <int kRows>
float fit_unit_scale(const MagnitudeGrid<kRows>& grid, const SignedOctet* octets, int n) {
  float amax = 0;
  for (int k = 0; k < n; ++k) {
    for (int j = 0; j < 8; ++j) amax = std::fmax(amax, std::fabs(octets[k].t[j]));
  }
  if (amax < kGroupMaxEps) return 0;
  float best_scale = amax / 43, best_error = std::numeric_limits<float>::infinity();
  int rows[4];
  float t2 = 0;
  for (int k = 0; k < n; ++k) t2 += octets[k].t2;
  for (int c = 0; c < 8; ++c) {
    unit_error(grid, kSearchShells, octets, n, amax / 43 * (0.5f + 0.15f * c), rows);
    float gt = 0, gg = 0;
    for (int k = 0; k < n; ++k) {
      for (int j = 0; j < 8; ++j) gt += grid.values[rows[k]][j] * octets[k].t[j];
      gg += grid.norm2[rows[k]];
    }
    if (gt <= 0) continue;
    const float refit = gt / gg;
    const float error = t2 - gt * refit;
    if (error < best_error) {
      best_error = error;
      best_scale = refit;
    }
  }
  return best_scale;
}

// Rounds a block's unit scales to d (fp16) and nibbles, trying each unit's nearest nibble and its
// neighbours with rows re-picked at the rounded scale. Writes nibbles[] and rows[unit][octet];
// returns the fp16 d (0 for an all-zero block, with nibbles and rows 0).
template <int kRows, int kUnits, int kOctets>
uint16_t quantize_units(const MagnitudeGrid<kRows>& grid, const SignedOctet (*octets)[kOctets],
                        uint8_t* nibbles, int (*rows)[kOctets]) {
  float scales[kUnits];
  float max_scale = 0;
  for (int u = 0; u < kUnits; ++u) {
    scales[u] = fit_unit_scale(grid, octets[u], kOctets);
    max_scale = std::fmax(max_scale, scales[u]);
  }
  const uint16_t d16 = fp32_to_fp16(max_scale / 3.875f);  // 3.875 = (0.5 + 15)·0.25
  const float d = fp16_to_fp32(d16);
  std::memset(nibbles, 0, kUnits);
  std::memset(rows, 0, sizeof(int) * kUnits * kOctets);
  if (d == 0) return 0;
  for (int u = 0; u < kUnits; ++u) {
    // Clamped first: with d in fp16's subnormal range scales[u]/d can stray far past 15.5.
    const int nearest = std::clamp(nearest_int(scales[u] / (0.25f * d) - 0.5f), 0, 15);
    float best_error = std::numeric_limits<float>::infinity();
    for (int nibble = nearest - 1; nibble <= nearest + 1; ++nibble) {
      if (nibble < 0 || nibble > 15) continue;
      const float db = d * (0.5f + nibble) * 0.25f;  // as dequantization computes it
      int candidate[kOctets];
      const float error = unit_error(grid, kFinalShells, octets[u], kOctets, db, candidate);
      if (error < best_error) {
        best_error = error;
        nibbles[u] = static_cast<uint8_t>(nibble);
        std::memcpy(rows[u], candidate, sizeof(candidate));
      }
    }
  }
  return d16;
}

}  // namespace

// IQ2_XXS: 8 units of 32 (4 octets); group g stores grid bytes in qs[4g..4g+1] and the four sign
// indices (7 bits each) plus the scale nibble (top 4 bits) in qs[4g+2..4g+3].
void quantize_row_iq2_xxs(const float* x, BlockIQ2XXS* y, int64_t n) {
  const auto& grid = iq2xxs_float_grid();
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    SignedOctet octets[8][4];
    for (int g = 0; g < 8; ++g) {
      for (int k = 0; k < 4; ++k) octets[g][k] = fold_signs(x + 32 * g + 8 * k);
    }
    uint8_t nibbles[8];
    int rows[8][4];
    y[i].d = quantize_units<256, 8, 4>(grid, octets, nibbles, rows);
    for (int g = 0; g < 8; ++g) {
      uint32_t aux[2] = {0, static_cast<uint32_t>(nibbles[g]) << 28};
      for (int k = 0; k < 4; ++k) {
        aux[0] |= static_cast<uint32_t>(rows[g][k]) << (8 * k);
        aux[1] |= static_cast<uint32_t>(octets[g][k].sign_index) << (7 * k);
      }
      std::memcpy(y[i].qs + 4 * g, aux, sizeof(aux));
    }
  }
}

// IQ2_XS: 16 units of 16 (2 octets); code = grid index (9 bits) | sign index << 9; scales[g]
// holds the nibbles of units 2g (low) and 2g+1 (high).
void quantize_row_iq2_xs(const float* x, BlockIQ2XS* y, int64_t n) {
  const auto& grid = iq2xs_float_grid();
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    SignedOctet octets[16][2];
    for (int u = 0; u < 16; ++u) {
      for (int k = 0; k < 2; ++k) octets[u][k] = fold_signs(x + 16 * u + 8 * k);
    }
    uint8_t nibbles[16];
    int rows[16][2];
    y[i].d = quantize_units<512, 16, 2>(grid, octets, nibbles, rows);
    for (int u = 0; u < 16; ++u) {
      for (int k = 0; k < 2; ++k) {
        y[i].qs[2 * u + k] = static_cast<uint16_t>(rows[u][k] | (octets[u][k].sign_index << 9));
      }
    }
    for (int g = 0; g < 8; ++g) {
      y[i].scales[g] = static_cast<uint8_t>(nibbles[2 * g] | (nibbles[2 * g + 1] << 4));
    }
  }
}

}  // namespace v4::kernels
