// The device ops' quantized matrix products (spec §6): activations quantized to the weight
// type's dot-product format exactly as the CPU does, then a warp per (weight row, tile of
// tokens): lane l takes blocks l, l+32, … of the row and the lanes are summed by the executor's
// fixed butterfly. Each output is the same sequence of operations whatever the batch, the tile or
// the launch geometry (batch invariance); it differs from the CPU's vec_dot only in the order of
// the float sum across blocks. The weights stay in the GGUF block layout: consecutive lanes
// read consecutive blocks, so a warp's loads are contiguous.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/moe_routing.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_tables.h"
#include "kernels/device/quant_dot.h"
#include "model/backend/device/device_ops.h"

namespace v4::device {

// Tokens per warp: each weight block a lane loads serves this many tokens.
inline constexpr int kMatmulTile = 4;
// Lanes of a warp (both executors).
inline constexpr int kLanes = 32;

template <class E>
kernels::QuantTables quant_tables(DeviceScratch<E>& s) {
  using namespace kernels;
  return {static_cast<const uint64_t*>(s.constant(iq2xxs_grid, sizeof iq2xxs_grid)),
          static_cast<const uint64_t*>(s.constant(iq2xs_grid, sizeof iq2xs_grid)),
          static_cast<const uint64_t*>(s.constant(iq1s_grid, sizeof iq1s_grid)),
          static_cast<const uint8_t*>(s.constant(ksigns_iq2xs, sizeof ksigns_iq2xs)),
          static_cast<const int8_t*>(s.constant(kvalues_mxfp4, sizeof kvalues_mxfp4))};
}

// n activation rows of `cols` floats (`x_stride` apart) in the format `weight`'s dot product
// reads: quantized into `slot` (act_bytes per row), or, for float weights, the rows as they are.
struct Activations {
  const uint8_t* rows = nullptr;
  size_t row_bytes = 0;
  bool quantized = false;
};

template <class E>
Activations quantize_activations(E& e, DeviceScratch<E>& s, ScratchSlot slot, GgmlType weight,
                                 const float* x, int64_t x_stride, int64_t cols, int64_t n) {
  const GgmlType act = kernels::vec_dot_activation_type(weight);
  if (act != GgmlType::Q8_0 && act != GgmlType::Q8_K) {
    return {reinterpret_cast<const uint8_t*>(x), static_cast<size_t>(x_stride) * sizeof(float),
            false};
  }
  const size_t row_bytes = kernels::activation_row_bytes(weight, cols);
  uint8_t* out = s.template get<uint8_t>(slot, row_bytes * static_cast<size_t>(n) + 1);
  const int64_t block = act == GgmlType::Q8_0 ? kernels::kQK8_0 : kernels::kQK_K;
  const int64_t blocks = cols / block;
  const bool q8_0 = act == GgmlType::Q8_0;
  e.for_each(n * blocks, [=] V4_HD(int64_t i) {
    const int64_t t = i / blocks, b = i % blocks;
    const float* src = x + t * x_stride + b * block;
    uint8_t* row = out + t * row_bytes;
    if (q8_0) {
      kernels::quantize_block_q8_0(src, reinterpret_cast<kernels::BlockQ8_0*>(row) + b);
    } else {
      kernels::quantize_block_q8_k(src, reinterpret_cast<kernels::BlockQ8K*>(row) + b);
    }
  });
  return {out, row_bytes, true};
}

// One lane's share of W[row] · activation row over units [begin, end) of the row (groups of 32
// values of the 256-value formats, blocks of the 32-value ones, values of float weights):
// every 32nd unit from begin + lane.
V4_HD inline float lane_dot(GgmlType type, int64_t begin, int64_t end, const uint8_t* w_row,
                            const uint8_t* a_row, bool quantized, int lane,
                            const kernels::QuantTables& t) {
  float acc = 0.0f;
  if (quantized) {
    for (int64_t u = begin + lane; u < end; u += kLanes) {
      acc += kernels::unit_dot(type, w_row, a_row, u, t);
    }
  } else {
    const float* x = reinterpret_cast<const float*>(a_row);
    for (int64_t i = begin + lane; i < end; i += kLanes) {
      acc += kernels::float_weight(type, w_row, i) * x[i];
    }
  }
  return acc;
}

// Units (see lane_dot) per row chunk: a row longer than this is split into fixed
// chunks summed in order afterwards, so that short, wide matrices (the HC mixes: 24 rows of
// 16384 values) still fill the device. The split depends only on the row length, never on the
// batch.
inline constexpr int64_t kChunkUnits = 32 * 16;

// The weight types the device dot products read; anything else is refused before a launch.
inline void require_device_type(GgmlType type, const char* op) {
  if (kernels::can_dequantize(type) && type != GgmlType::Q8_K) return;
  std::fprintf(stderr, "%s: weight type %s has no device dot product\n", op,
               std::string(ggml_type_name(type)).c_str());
  std::abort();
}

template <class E>
void matmul(E& e, DeviceScratch<E>& s, const kernels::MatrixView& w, const float* x,
            int64_t x_stride, int64_t n_tokens, float* y, int64_t y_stride) {
  if (n_tokens <= 0 || w.rows <= 0) return;
  require_device_type(w.type, "matmul");
  const Activations a = quantize_activations(e, s, ScratchSlot::kMatmulActivations, w.type, x,
                                             x_stride, w.cols, n_tokens);
  const kernels::QuantTables tables = quant_tables(s);
  const kernels::MatrixView m = w;
  const int64_t units =
      a.quantized ? w.cols / ggml_type_traits(w.type).block_size * kernels::units_per_block(w.type)
                  : w.cols;
  const int64_t chunks = (units + kChunkUnits - 1) / kChunkUnits;
  const int64_t tiles = (n_tokens + kMatmulTile - 1) / kMatmulTile;
  // Index i: chunk fastest, then row, then token tile — consecutive warps read consecutive
  // bytes of the weights.
  float* partials = chunks == 1
                        ? nullptr
                        : s.template get<float>(ScratchSlot::kMatmulMid,
                                                static_cast<size_t>(n_tokens * w.rows * chunks));
  e.template warp_sums<kMatmulTile>(
      w.rows * tiles * chunks,
      [=] V4_HD(int64_t i, int lane, float* acc) {
        const int64_t c = i % chunks, r = i / chunks % m.rows,
                      t0 = i / chunks / m.rows * kMatmulTile;
        const int64_t begin = c * kChunkUnits,
                      end = begin + kChunkUnits < units ? begin + kChunkUnits : units;
        const uint8_t* w_row = m.data + r * m.row_bytes;
        for (int k = 0; k < kMatmulTile && t0 + k < n_tokens; ++k) {
          acc[k] += lane_dot(m.type, begin, end, w_row, a.rows + (t0 + k) * a.row_bytes,
                             a.quantized, lane, tables);
        }
      },
      [=] V4_HD(int64_t i, const float* sum) {
        const int64_t c = i % chunks, r = i / chunks % m.rows,
                      t0 = i / chunks / m.rows * kMatmulTile;
        for (int k = 0; k < kMatmulTile && t0 + k < n_tokens; ++k) {
          if (chunks == 1) {
            y[(t0 + k) * y_stride + r] = sum[k];
          } else {
            partials[((t0 + k) * m.rows + r) * chunks + c] = sum[k];
          }
        }
      });
  if (chunks == 1) return;
  e.for_each(n_tokens * w.rows, [=] V4_HD(int64_t i) {
    float acc = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) acc += partials[i * chunks + c];
    y[i / m.rows * y_stride + i % m.rows] = acc;
  });
}

template <class E>
void embed(E& e, DeviceScratch<E>& s, const kernels::MatrixView& table, const int32_t* tokens,
           int64_t n_tokens, uint32_t copies, float* x) {
  if (table.type != GgmlType::F32 && table.type != GgmlType::F16 && table.type != GgmlType::BF16 &&
      table.type != GgmlType::Q8_0) {
    std::fprintf(stderr, "embed: embedding type %s has no device decoder\n",
                 std::string(ggml_type_name(table.type)).c_str());
    std::abort();
  }
  const kernels::MatrixView m = table;
  const int64_t d = table.cols, flat = d * copies;
  e.for_each(n_tokens * flat, [=] V4_HD(int64_t i) {
    const int64_t t = i / flat, col = i % d;
    x[i] = kernels::dequantized_value(m.type, m.data + static_cast<size_t>(tokens[t]) * m.row_bytes,
                                      col);
  });
}

// The expert a row belongs to: the last e with offsets[e] <= row (offsets ascending).
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

template <class E>
void grouped_expert_ffn(E& e, DeviceScratch<E>& s, const ExpertFfnWeights& w,
                        const int64_t* expert_offsets, uint32_t n_expert, const float* x,
                        const float* row_scales, float* y) {
  // The row count lives on the device (the dispatch plan made it there); the launch needs it.
  int64_t n_rows = 0;
  if (!e.copy_out(&n_rows, expert_offsets + n_expert, sizeof(n_rows)) || n_rows <= 0) return;
  require_device_type(w.gate.first.type, "grouped_expert_ffn");
  require_device_type(w.down.first.type, "grouped_expert_ffn");
  const kernels::MatrixView gate = w.gate.first, up = w.up.first, down = w.down.first;
  const size_t gate_stride = w.gate.stride, up_stride = w.up.stride, down_stride = w.down.stride;
  const int64_t d = gate.cols, ff = gate.rows;
  const Activations xg =
      quantize_activations(e, s, ScratchSlot::kMatmulActivations, gate.type, x, d, d, n_rows);
  const Activations xu = up.type == gate.type ? xg
                                              : quantize_activations(e, s, ScratchSlot::kMatmulAux,
                                                                     up.type, x, d, d, n_rows);
  const kernels::QuantTables tables = quant_tables(s);
  float* mid = s.template get<float>(ScratchSlot::kMatmulMid, static_cast<size_t>(n_rows * ff));
  auto units_of = [](GgmlType type, int64_t cols) {
    return cols / ggml_type_traits(type).block_size * kernels::units_per_block(type);
  };
  const int64_t gate_blocks = units_of(gate.type, d), up_blocks = units_of(up.type, d);
  const float limit = w.swiglu_limit;
  // A warp per (output, tile of kMatmulTile rows): rows of one expert share each weight block the
  // lanes load (the next row's expert is usually the same). Each row's sums are its own.
  const int64_t tiles = (n_rows + kMatmulTile - 1) / kMatmulTile;
  e.template warp_sums<2 * kMatmulTile>(
      tiles * ff,
      [=] V4_HD(int64_t i, int lane, float* acc) {
        const int64_t r = i % ff, first = i / ff * kMatmulTile;
        for (int k = 0; k < kMatmulTile && first + k < n_rows; ++k) {
          const int64_t row = first + k;
          const int64_t ex = expert_of_row(expert_offsets, n_expert, row);
          acc[2 * k] +=
              lane_dot(gate.type, 0, gate_blocks, gate.data + ex * gate_stride + r * gate.row_bytes,
                       xg.rows + row * xg.row_bytes, xg.quantized, lane, tables);
          acc[2 * k + 1] +=
              lane_dot(up.type, 0, up_blocks, up.data + ex * up_stride + r * up.row_bytes,
                       xu.rows + row * xu.row_bytes, xu.quantized, lane, tables);
        }
      },
      [=] V4_HD(int64_t i, const float* sum) {
        const int64_t r = i % ff, first = i / ff * kMatmulTile;
        for (int k = 0; k < kMatmulTile && first + k < n_rows; ++k) {
          const int64_t row = first + k;
          mid[row * ff + r] = kernels::swiglu(sum[2 * k], sum[2 * k + 1], limit,
                                              row_scales ? row_scales[row] : 1.0f);
        }
      });
  const Activations h =
      quantize_activations(e, s, ScratchSlot::kMatmulAux, down.type, mid, ff, ff, n_rows);
  const int64_t down_blocks = units_of(down.type, ff);
  e.template warp_sums<kMatmulTile>(
      tiles * d,
      [=] V4_HD(int64_t i, int lane, float* acc) {
        const int64_t r = i % d, first = i / d * kMatmulTile;
        for (int k = 0; k < kMatmulTile && first + k < n_rows; ++k) {
          const int64_t row = first + k;
          const int64_t ex = expert_of_row(expert_offsets, n_expert, row);
          acc[k] +=
              lane_dot(down.type, 0, down_blocks, down.data + ex * down_stride + r * down.row_bytes,
                       h.rows + row * h.row_bytes, h.quantized, lane, tables);
        }
      },
      [=] V4_HD(int64_t i, const float* sum) {
        const int64_t r = i % d, first = i / d * kMatmulTile;
        for (int k = 0; k < kMatmulTile && first + k < n_rows; ++k) y[(first + k) * d + r] = sum[k];
      });
}

}  // namespace v4::device
