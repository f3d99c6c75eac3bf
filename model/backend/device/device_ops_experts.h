// The grouped expert FFN on the device (spec §3.5): the rows of each expert multiplied by its
// gate, up and down matrices with the quantized products of device_ops_matmul.h — by the warp
// kernels, or on the tensor cores when the rows per expert are many (the same bits).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/moe_routing.h"
#include "model/backend/device/device_ops_matmul.h"

namespace v4::device {

// Threads of the team that finishes an expert FFN row (SwiGLU, then its quantization).
inline constexpr int kSwigluTeam = 256;

// The expert a row belongs to: the last e with offsets[e] <= row (offsets non-decreasing; an
// expert without rows starts where the next one does). Also finds a tile's expert from the
// experts' first tiles.
V4_HD inline int64_t expert_of_row(const int64_t* offsets, uint32_t n_expert, int64_t row) {
  int64_t lo = 0, hi = n_expert;  // offsets[lo] <= row < offsets[hi]
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (offsets[mid] <= row) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// One expert product: out[row][r] = W_e[r] · act[row], W_e at w.data + e·stride.
struct ExpertProduct {
  kernels::MatrixView w;
  size_t stride = 0;
  Activations act;
  float* out = nullptr;
};

// out[row][r] = W_e[r] · act[row] for every row, e the row's expert (expert_of_row), r < rows,
// for `first` and, when `both`, for `second` too (same type and shape) in the same launch: a warp
// per (product, output, tile of kMatmulTile rows). Rows of one expert share each weight block the
// lanes load (the next row's expert is usually the same); each row's sum is its own, the same
// whether one product or two share the launch.
template <GgmlType T, class E>
void expert_rows_matvec(E& e, DeviceScratch<E>& s, const ExpertProduct& first,
                        const ExpertProduct& second, bool both, const int64_t* expert_offsets,
                        uint32_t n_expert, int64_t n_rows) {
  const kernels::QuantTables tables = quant_tables(s);
  const ExpertProduct p0 = first, p1 = second;
  const int64_t units = row_units(T, first.w.cols), outs = first.w.rows;
  const int64_t tiles = (n_rows + kMatmulTile - 1) / kMatmulTile;
  const int64_t per_product = tiles * outs;
  e.template warp_sums<kMatmulTile>(
      (both ? 2 : 1) * per_product,
      [=] V4_HD(int64_t i, int lane, float* acc) {
        // Scalars picked, not a reference to either product: the closure stays in registers.
        const bool second_product = i >= per_product;
        const uint8_t* wdata = second_product ? p1.w.data : p0.w.data;
        const size_t wstride = second_product ? p1.stride : p0.stride;
        const size_t wrow = second_product ? p1.w.row_bytes : p0.w.row_bytes;
        const uint8_t* arows = second_product ? p1.act.rows : p0.act.rows;
        const size_t arow = second_product ? p1.act.row_bytes : p0.act.row_bytes;
        const bool split = second_product ? p1.w.q8_0_split : p0.w.q8_0_split;
        const int64_t j = i % per_product;
        const int64_t r = j % outs, tile_first = j / outs * kMatmulTile;
        V4_UNROLL_ALL
        for (int k = 0; k < kMatmulTile; ++k) {
          const int64_t row = tile_first + k;
          if (row >= n_rows) continue;
          const int64_t ex = expert_of_row(expert_offsets, n_expert, row);
          acc[k] += lane_dot<T>(0, units, units, wdata + ex * wstride + r * wrow,
                                arows + row * arow, lane, tables, split);
        }
      },
      [=] V4_HD(int64_t i, const float* sum) {
        float* out = i < per_product ? p0.out : p1.out;
        const int64_t j = i % per_product;
        const int64_t r = j % outs, tile_first = j / outs * kMatmulTile;
        V4_UNROLL_ALL
        for (int k = 0; k < kMatmulTile; ++k) {
          if (tile_first + k < n_rows) out[(tile_first + k) * outs + r] = sum[k];
        }
      });
}

// expert_rows_matvec on the tensor cores (the same bits): a team per (product, 16 outputs, tile of
// up to 16 rows of one expert). The tiles are numbered on the device, expert by expert
// (tile_start[e]: the first tile of expert e), so a recorded step needs no host round trip;
// teams past the last tile return at once.
template <GgmlType T, class E>
void expert_rows_mma(E& e, DeviceScratch<E>& s, const ExpertProduct& first,
                     const ExpertProduct& second, bool both, const int64_t* expert_offsets,
                     uint32_t n_expert, int64_t n_rows) {
  constexpr int64_t kTile = kernels::kMmaTile;
  const kernels::QuantTables tables = quant_tables(s);
  const ExpertProduct p0 = first, p1 = second;
  const int64_t units = row_units(T, first.w.cols), outs = first.w.rows;
  int64_t* tile_start = s.template get<int64_t>(ScratchSlot::kMatmulTiles, n_expert + 1);
  e.for_each(1, [=] V4_HD(int64_t) {
    int64_t next = 0;
    for (uint32_t x = 0; x < n_expert; ++x) {
      tile_start[x] = next;
      next += (expert_offsets[x + 1] - expert_offsets[x] + kTile - 1) / kTile;
    }
    tile_start[n_expert] = next;
  });
  const int64_t max_tiles = (n_rows + kTile - 1) / kTile + n_expert;
  const int64_t out_tiles = (outs + kTile - 1) / kTile;
  e.for_each_team((both ? 2 : 1) * out_tiles * max_tiles, kMmaTeam, kMmaSharedBytes,
                  [=] V4_HD(int64_t i, const typename E::Team& team) {
                    const int64_t tile = i % max_tiles;
                    if (tile >= tile_start[n_expert]) return;
                    // Scalars picked, not a reference to either product (as in expert_rows_matvec).
                    const bool second_product = i / max_tiles >= out_tiles;
                    const int64_t r0 = i / max_tiles % out_tiles * kTile;
                    // The expert: the last one whose tiles start at or before this one (an expert
                    // without rows starts where the next one does).
                    const int64_t lo = expert_of_row(tile_start, n_expert, tile);
                    const int64_t row0 = expert_offsets[lo] + (tile - tile_start[lo]) * kTile;
                    const int64_t rows_left = expert_offsets[lo + 1] - row0;
                    MmaTile job;
                    job.w_row_bytes = second_product ? p1.w.row_bytes : p0.w.row_bytes;
                    job.w = (second_product ? p1.w.data : p0.w.data) +
                            lo * (second_product ? p1.stride : p0.stride) + r0 * job.w_row_bytes;
                    job.rows = outs - r0 < kTile ? outs - r0 : kTile;
                    job.a_row_bytes = second_product ? p1.act.row_bytes : p0.act.row_bytes;
                    job.a = (second_product ? p1.act.rows : p0.act.rows) + row0 * job.a_row_bytes;
                    job.tokens = rows_left < kTile ? rows_left : kTile;
                    job.units = units;
                    job.begin = 0;
                    job.end = units;
                    job.out = (second_product ? p1.out : p0.out) + row0 * outs + r0;
                    job.token_stride = outs;
                    job.row_stride = 1;
                    job.q8_0_split = second_product ? p1.w.q8_0_split : p0.w.q8_0_split;
                    mma_tile<T>(job, tables, team);
                  });
}

template <class E>
void expert_rows_matvec(E& e, DeviceScratch<E>& s, const ExpertProduct& first,
                        const ExpertProduct& second, bool both, const int64_t* expert_offsets,
                        uint32_t n_expert, int64_t n_rows) {
  dispatch_weight_type(first.w.type, "grouped_expert_ffn", [&](auto tag) {
    constexpr GgmlType T = decltype(tag)::value;
    if constexpr (kernels::has_int8_units(T)) {
      if (s.options().tensor_cores && n_rows >= kMmaMinRowsPerExpert * int64_t{n_expert} &&
          row_units(T, first.w.cols) <= kMmaMaxUnits) {
        expert_rows_mma<T>(e, s, first, second, both, expert_offsets, n_expert, n_rows);
        return;
      }
    }
    expert_rows_matvec<T>(e, s, first, second, both, expert_offsets, n_expert, n_rows);
  });
}

template <class E>
void grouped_expert_ffn(E& e, DeviceScratch<E>& s, const ExpertFfnWeights& w,
                        const int64_t* expert_offsets, uint32_t n_expert, int64_t n_rows,
                        const float* x, const int64_t* x_rows, const float* row_scales, float* y) {
  if (n_rows <= 0) return;
  const kernels::MatrixView gate = w.gate.first, up = w.up.first, down = w.down.first;
  const int64_t d = gate.cols, ff = gate.rows;
  // Quantized formats gather the rows as they quantize them. Float weights read the rows as
  // they are: those are gathered into y first (its shape), which the down product overwrites
  // last.
  if (x_rows && (activation_format(gate.type, d).kind == ActivationFormat::kFloat ||
                 activation_format(up.type, d).kind == ActivationFormat::kFloat)) {
    gather_rows(e, s, x, d, x_rows, n_rows, y);
    x = y;
    x_rows = nullptr;
  }
  const Activations xg = quantize_activations(e, s, ScratchSlot::kMatmulActivations, gate.type, x,
                                              d, d, n_rows, x_rows);
  const Activations xu =
      up.type == gate.type
          ? xg
          : quantize_activations(e, s, ScratchSlot::kMatmulAux, up.type, x, d, d, n_rows, x_rows);
  const size_t hidden = static_cast<size_t>(n_rows * ff);
  float* g = s.template get<float>(ScratchSlot::kMatmulMid, 2 * hidden);
  float* u = g + hidden;
  // Gate and up in one launch when they are alike (V4: always), else one each.
  const ExpertProduct gp{gate, w.gate.stride, xg, g}, upp{up, w.up.stride, xu, u};
  const bool alike = up.type == gate.type && up.rows == gate.rows && up.cols == gate.cols;
  expert_rows_matvec(e, s, gp, upp, alike, expert_offsets, n_expert, n_rows);
  if (!alike) expert_rows_matvec(e, s, upp, upp, false, expert_offsets, n_expert, n_rows);
  // SwiGLU and the down product's activations in one launch: a team per row computes its
  // SwiGLU in place, then quantizes the row it just wrote.
  const float limit = w.swiglu_limit;
  const ActivationFormat hf = activation_format(down.type, ff);
  uint8_t* hq = hf.kind == ActivationFormat::kFloat
                    ? nullptr
                    : activation_rows(s, ScratchSlot::kMatmulAux, hf, n_rows);
  e.for_each_team(n_rows, kSwigluTeam, 0, [=] V4_HD(int64_t t, const typename E::Team& team) {
    float* gt = g + t * ff;
    const float* ut = u + t * ff;
    const float scale = row_scales ? row_scales[t] : 1.0f;
    team.threads([&](int l) {
      for (int64_t i = l; i < ff; i += team.size())
        gt[i] = kernels::swiglu(gt[i], ut[i], limit, scale);
    });
    if (hf.kind == ActivationFormat::kFloat) return;
    team.threads([&](int l) {
      for (int64_t i = l; i < hf.units; i += team.size())
        quantize_unit(hf, gt, hq + t * hf.row_bytes, i);
    });
  });
  const Activations h = hq ? Activations{hq, hf.row_bytes}
                           : Activations{reinterpret_cast<const uint8_t*>(g), ff * sizeof(float)};
  const ExpertProduct dp{down, w.down.stride, h, y};
  expert_rows_matvec(e, s, dp, dp, false, expert_offsets, n_expert, n_rows);
}

}  // namespace v4::device
