// The device ops' quantized matrix products (spec §6): activations quantized to the weight
// type's dot-product format exactly as the CPU does, then a warp per (weight row, tile of
// tokens): lane l takes units l, l+32, … of the row (blocks, or groups of 32 of the 256-value
// formats, or runs of 8 float weights), loads each once for all the tile's tokens, and the lanes
// are summed by the executor's fixed butterfly. Each output is the same sequence of operations
// whatever the batch, the tile or the launch geometry (batch invariance); it differs from the
// CPU's vec_dot only in the order of the float sum across units. The weights stay in the GGUF
// block layout (consecutive lanes read consecutive units, so a warp's loads are contiguous),
// except Q8_0 rows the upload rewrote in the split layout (device_ops_q8_0_split.h).
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "core/hd.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_tables.h"
#include "kernels/device/quant_dot.h"
#include "model/backend/device/device_ops.h"
#include "model/backend/device/device_ops_activations.h"
#include "model/backend/device/device_ops_elementwise.h"
#include "model/backend/device/device_ops_matmul_mma.h"

namespace v4::device {

// Tokens per warp (from two tokens on): each weight block a lane loads serves this many tokens.
inline constexpr int kMatmulTile = 8;
// Lanes of a warp (both executors).
inline constexpr int kLanes = 32;

template <class E>
kernels::QuantTables quant_tables(DeviceScratch<E>& s) {
  using namespace kernels;
  return {static_cast<const uint64_t*>(s.constant(iq2xxs_grid, sizeof iq2xxs_grid)),
          static_cast<const uint64_t*>(s.constant(iq2xs_grid, sizeof iq2xs_grid)),
          static_cast<const uint64_t*>(s.constant(iq1s_grid, sizeof iq1s_grid))};
}

// The weight types the device dot products read, each dispatched to kernels compiled for it, so
// that a lane's loop holds one format's decoding (no per-unit switch) and unrolls.
template <GgmlType T>
struct WeightTypeTag {
  static constexpr GgmlType value = T;
};

template <class F>
void dispatch_weight_type(GgmlType type, const char* op, F&& f) {
  switch (type) {
#define V4_WEIGHT_TYPE_CASE(T)       \
  case GgmlType::T:                  \
    f(WeightTypeTag<GgmlType::T>{}); \
    return;
    V4_WEIGHT_TYPE_CASE(F32)
    V4_WEIGHT_TYPE_CASE(F16)
    V4_WEIGHT_TYPE_CASE(BF16)
    V4_WEIGHT_TYPE_CASE(Q8_0)
    V4_WEIGHT_TYPE_CASE(MXFP4)
    V4_WEIGHT_TYPE_CASE(Q2_K)
    V4_WEIGHT_TYPE_CASE(Q4_K)
    V4_WEIGHT_TYPE_CASE(Q5_K)
    V4_WEIGHT_TYPE_CASE(Q6_K)
    V4_WEIGHT_TYPE_CASE(IQ2_XXS)
    V4_WEIGHT_TYPE_CASE(IQ2_XS)
    V4_WEIGHT_TYPE_CASE(IQ1_S)
    V4_WEIGHT_TYPE_CASE(IQ1_M)
#undef V4_WEIGHT_TYPE_CASE
    default:
      // The loader refuses other types; reaching here is a programming error.
      std::fprintf(stderr, "%s: weight type %s has no device dot product\n", op,
                   std::string(ggml_type_name(type)).c_str());
      std::abort();
  }
}

// Float weights are read against float activations; every other type against the activations
// quantized to its dot-product format (quantize_activations).
constexpr bool is_float_weight(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16;
}

// Dot-product units of a row of `cols` values: groups of 32 for the 256-value formats, blocks of
// the 32-value ones, values of float weights.
inline int64_t row_units(GgmlType type, int64_t cols) {
  if (is_float_weight(type)) return cols;
  return cols / ggml_type_traits(type).block_size * kernels::units_per_block(type);
}

// Values of a float weight row a lane takes per step: 8 consecutive (one 16-byte load of
// F16/BF16), so a warp reads 512 contiguous bytes per step.
inline constexpr int64_t kFloatRun = 8;

// The kFloatRun values of float weight row `row` from value i (a multiple of kFloatRun).
template <GgmlType T>
V4_HD inline void float_run(const uint8_t* row, int64_t i, float* out) {
  if constexpr (T == GgmlType::F32) {
    const float* p = reinterpret_cast<const float*>(row) + i;
    V4_UNROLL_ALL
    for (int q = 0; q < kFloatRun; ++q) out[q] = p[q];
  } else {
    uint16_t h[kFloatRun];
#if defined(__CUDA_ARCH__)
    const uint16_t* p = reinterpret_cast<const uint16_t*>(row) + i;
    if ((reinterpret_cast<uintptr_t>(p) & 15) == 0) {
      const uint4 v = *reinterpret_cast<const uint4*>(p);
      memcpy(h, &v, sizeof(h));
    } else {
      for (int q = 0; q < kFloatRun; ++q) h[q] = p[q];
    }
#else
    memcpy(h, row + 2 * i, sizeof(h));
#endif
    V4_UNROLL_ALL
    for (int q = 0; q < kFloatRun; ++q) {
      out[q] = T == GgmlType::F16 ? fp16_to_fp32(h[q]) : bf16_to_fp32(h[q]);
    }
  }
}

// One lane's share of W[row] · x_k for the tile's tokens k < n (their activation rows
// `a_row_bytes` apart), over units [begin, end) of the row (see row_units): every 32nd unit (float
// weights: every 32nd run of kFloatRun values) from begin + lane, added to acc[k]. Each weight
// unit is loaded once for all the tile's tokens; a token's sum runs over its units in the same
// order whatever the tile holds (batch invariance). T is a constant, so unit_dot's switch folds
// away after inlining and the loops unroll. `q8_0_split`: a Q8_0 row in the split layout
// (split_q8_0_rows); either layout gives the same sums.
template <GgmlType T, int Tile>
V4_HD inline void lane_dot_tile(int64_t begin, int64_t end, int64_t row_units, const uint8_t* w_row,
                                const uint8_t* a_rows, size_t a_row_bytes, int64_t n, int lane,
                                const kernels::QuantTables& t, float* acc,
                                bool q8_0_split = false) {
  if constexpr (is_float_weight(T)) {
    // Whole runs, then (rows of a length that is not a multiple of kFloatRun) the tail a value
    // per lane.
    const int64_t runs_end = begin + (end - begin) / kFloatRun * kFloatRun;
    for (int64_t i = begin + kFloatRun * lane; i < runs_end; i += kFloatRun * kLanes) {
      float w[kFloatRun];
      float_run<T>(w_row, i, w);
      V4_UNROLL_ALL
      for (int k = 0; k < Tile; ++k) {
        if (k >= n) continue;
        const float* x = reinterpret_cast<const float*>(a_rows + k * a_row_bytes) + i;
        float sum = acc[k];
        V4_UNROLL_ALL
        for (int q = 0; q < kFloatRun; ++q) sum += w[q] * x[q];
        acc[k] = sum;
      }
    }
    for (int64_t i = runs_end + lane; i < end; i += kLanes) {
      const float w = kernels::float_weight(T, w_row, i);
      V4_UNROLL_ALL
      for (int k = 0; k < Tile; ++k) {
        if (k < n) acc[k] += w * reinterpret_cast<const float*>(a_rows + k * a_row_bytes)[i];
      }
    }
  } else if constexpr (T == GgmlType::Q8_0) {
    // Activations in the split layout (split_q8_0_row_bytes); `row_units` blocks per row.
    V4_UNROLL(2)
    for (int64_t u = begin + lane; u < end; u += kLanes) {
      int32_t w[kernels::kQK8_0 / 4];
      if (q8_0_split) {
        kernels::load_q8_0_split_quants(w_row, u, w);
      } else {
        kernels::load_q8_0_weights(reinterpret_cast<const kernels::BlockQ8_0*>(w_row)[u].qs, w);
      }
      const float dw = fp16_to_fp32(kernels::q8_0_scale(w_row, row_units, u, q8_0_split));
      V4_UNROLL_ALL
      for (int k = 0; k < Tile; ++k) {
        if (k >= n) continue;
        const uint8_t* a_row = a_rows + k * a_row_bytes;
        const uint16_t da = kernels::q8_0_scale(a_row, row_units, u, true);
        acc[k] +=
            kernels::finish_q8_0(dw, da, kernels::dot_q8_0_split(w, a_row + u * kernels::kQK8_0));
      }
    }
  } else if constexpr (T == GgmlType::MXFP4) {
    // Activations in the split layout, as for Q8_0: the block's values are decoded once (byte
    // selects, no table loads), then met by each row's two 16-byte loads of quants.
    V4_UNROLL(2)
    for (int64_t u = begin + lane; u < end; u += kLanes) {
      uint8_t e;
      uint32_t q[4], v[8];
      kernels::load_mxfp4_block(w_row, u, &e, q);
      kernels::mxfp4_block_values(q, v);
      V4_UNROLL_ALL
      for (int k = 0; k < Tile; ++k) {
        if (k >= n) continue;
        const uint8_t* a_row = a_rows + k * a_row_bytes;
        int32_t a[kernels::kQK8_0 / 4];
        kernels::load_q8_0_split_quants(a_row, u, a);
        acc[k] += kernels::finish_mxfp4(e, kernels::q8_0_scale(a_row, row_units, u, true),
                                        kernels::dot32_i8(v, a));
      }
    }
  } else {
    V4_UNROLL(2)
    for (int64_t u = begin + lane; u < end; u += kLanes) {
      V4_UNROLL_ALL
      for (int k = 0; k < Tile; ++k) {
        if (k < n) acc[k] += kernels::unit_dot(T, w_row, a_rows + k * a_row_bytes, u, t);
      }
    }
  }
}

// lane_dot_tile for one activation row: the lane's partial sum.
template <GgmlType T>
V4_HD inline float lane_dot(int64_t begin, int64_t end, int64_t row_units, const uint8_t* w_row,
                            const uint8_t* a_row, int lane, const kernels::QuantTables& t,
                            bool q8_0_split = false) {
  float one[1] = {};
  lane_dot_tile<T, 1>(begin, end, row_units, w_row, a_row, 0, 1, lane, t, one, q8_0_split);
  return one[0];
}

// Units (see row_units) per row chunk: a row longer than this is split into fixed chunks summed
// in order afterwards, so that short, wide matrices (the HC mixes: 24 rows of 16384 values)
// still fill the device. The split depends only on the row length, never on the batch.
inline constexpr int64_t kChunkUnits = 32 * 16;
// Float weights: values per chunk (a lane takes kFloatRun values per step).
inline constexpr int64_t kFloatChunkValues = kChunkUnits * kFloatRun;

inline int64_t chunk_units(GgmlType type) {
  return is_float_weight(type) ? kFloatChunkValues : kChunkUnits;
}

// Tokens from which a product whose weight type has int8 units runs on the tensor cores
// (device_ops_matmul_mma.h), and rows per expert on average for the grouped expert products.
// Either kernel gives the same bits: these only choose the faster one.
inline constexpr int64_t kMmaMinTokens = 32;
inline constexpr int64_t kMmaMinRowsPerExpert = 4;

// The rows one product launch computes: up to kMaxRowParts matrices of one type and width,
// read as one matrix of their rows in order (a layer's projections of one input, or the groups
// of the grouped output). Token t's activations for part j are activation row
// t·per_token + part[j].activation, and its outputs go to part[j].y + t·part[j].y_stride + (the
// row within the part). Which part a row lies in changes no arithmetic: each output is the
// same sequence of operations as in a product of its part alone.
inline constexpr int kMaxRowParts = 8;
struct RowPart {
  const uint8_t* data = nullptr;
  int64_t rows = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
  int64_t activation = 0;
};
struct RowParts {
  RowPart part[kMaxRowParts];
  int count = 0;
  int64_t rows = 0;  // of all the parts
  size_t row_bytes = 0;
  int64_t per_token = 1;    // activation rows per token
  bool q8_0_split = false;  // every part's rows (see MatrixView)

  void add(const RowPart& p) {
    part[count++] = p;
    rows += p.rows;
  }
  // The part holding row r of all the parts; r becomes the row within it. Every index into
  // `part` is a constant after unrolling, so a kernel reads the parts from its parameters
  // instead of copying them to local memory.
  V4_HD RowPart find(int64_t& r) const {
    RowPart found = part[0];
    int64_t first = 0, local = r;
    V4_UNROLL_ALL
    for (int j = 0; j < kMaxRowParts; ++j) {
      if (j < count && r >= first) {
        found = part[j];
        local = r - first;
      }
      if (j < count) first += part[j].rows;
    }
    r = local;
    return found;
  }
  // A tensor-core tile of 16 rows never spans two parts.
  bool tiles_align(int64_t tile) const {
    for (int j = 0; j + 1 < count; ++j) {
      if (part[j].rows % tile != 0) return false;
    }
    return true;
  }
};

// The parts of one matrix w written to y (rows y_stride apart), one activation row per token.
inline RowParts whole_matrix(const kernels::MatrixView& w, float* y, int64_t y_stride) {
  RowParts p;
  p.row_bytes = w.row_bytes;
  p.q8_0_split = w.q8_0_split;
  p.add({w.data, w.rows, y, y_stride, 0});
  return p;
}

// The tensor-core tiles of a product (see matmul_typed): a team per (chunk, 16 rows, 16 tokens),
// chunk fastest, then rows, as the warps of the warp kernel are ordered.
template <GgmlType T, class E>
void matmul_mma_tiles(E& e, const kernels::QuantTables& tables, const RowParts& p,
                      const Activations& a, int64_t units, int64_t chunk, int64_t n_tokens,
                      float* partials) {
  constexpr int64_t kTile = kernels::kMmaTile;
  const int64_t chunks = (units + chunk - 1) / chunk;
  const int64_t row_tiles = (p.rows + kTile - 1) / kTile;
  const int64_t token_tiles = (n_tokens + kTile - 1) / kTile;
  e.for_each_team(chunks * row_tiles * token_tiles, kMmaTeam, kMmaSharedBytes,
                  [=] V4_HD(int64_t i, const typename E::Team& team) {
                    const int64_t c = i % chunks, r0 = i / chunks % row_tiles * kTile;
                    const int64_t t0 = i / chunks / row_tiles * kTile;
                    int64_t local = r0;
                    const RowPart part = p.find(local);
                    MmaTile job;
                    job.w = part.data + local * p.row_bytes;
                    job.w_row_bytes = p.row_bytes;
                    job.rows = part.rows - local < kTile ? part.rows - local : kTile;
                    job.a = a.rows + (t0 * p.per_token + part.activation) * a.row_bytes;
                    job.a_row_bytes = p.per_token * a.row_bytes;
                    job.tokens = n_tokens - t0 < kTile ? n_tokens - t0 : kTile;
                    job.units = units;
                    job.begin = c * chunk;
                    job.end = job.begin + chunk < units ? job.begin + chunk : units;
                    job.q8_0_split = p.q8_0_split;
                    if (chunks == 1) {
                      job.out = part.y + t0 * part.y_stride + local;
                      job.token_stride = part.y_stride;
                      job.row_stride = 1;
                    } else {
                      job.out = partials + (t0 * p.rows + r0) * chunks + c;
                      job.token_stride = p.rows * chunks;
                      job.row_stride = chunks;
                    }
                    mma_tile<T>(job, tables, team);
                  });
}

// The product of the parts' rows with the activations `a` (quantized for T, per_token rows per
// token), each row's sum in chunks of `chunk` units (chunk_units(T) in the forward), by the warp
// kernel or, for `mma`, the tensor-core tiles (the same bits). With `unreduced` (one part whose y
// rows are p.rows apart) the chunk pass is left to the consumer, which reads the outputs from it.
template <GgmlType T, int Tile, class E>
void matmul_typed(E& e, DeviceScratch<E>& s, const RowParts& p, const Activations& a, int64_t cols,
                  int64_t n_tokens, int64_t chunk, bool mma = false,
                  UnreducedRows* unreduced = nullptr) {
  const kernels::QuantTables tables = quant_tables(s);
  const int64_t units = row_units(T, cols);
  const int64_t chunks = (units + chunk - 1) / chunk;
  const int64_t tiles = (n_tokens + Tile - 1) / Tile;
  float* partials = chunks == 1
                        ? nullptr
                        : s.template get<float>(ScratchSlot::kMatmulMid,
                                                static_cast<size_t>(n_tokens * p.rows * chunks));
  const bool tiles_on_tensor_cores = kernels::has_int8_units(T) && mma && chunk <= kMmaMaxUnits &&
                                     p.tiles_align(kernels::kMmaTile);
  if constexpr (kernels::has_int8_units(T)) {
    if (tiles_on_tensor_cores)
      matmul_mma_tiles<T>(e, tables, p, a, units, chunk, n_tokens, partials);
  }
  // Index i: chunk fastest, then row, then token tile — consecutive warps read consecutive
  // bytes of the weights.
  if (!tiles_on_tensor_cores) {
    e.template warp_sums<Tile>(
        p.rows * tiles * chunks,
        [=] V4_HD(int64_t i, int lane, float* acc) {
          const int64_t c = i % chunks, t0 = i / chunks / p.rows * Tile;
          int64_t r = i / chunks % p.rows;
          const RowPart part = p.find(r);
          const int64_t begin = c * chunk, end = begin + chunk < units ? begin + chunk : units;
          lane_dot_tile<T, Tile>(begin, end, units, part.data + r * p.row_bytes,
                                 a.rows + (t0 * p.per_token + part.activation) * a.row_bytes,
                                 p.per_token * a.row_bytes, n_tokens - t0, lane, tables, acc,
                                 p.q8_0_split);
        },
        [=] V4_HD(int64_t i, const float* sum) {
          const int64_t c = i % chunks, r_all = i / chunks % p.rows;
          const int64_t t0 = i / chunks / p.rows * Tile;
          int64_t r = r_all;
          const RowPart part = p.find(r);
          V4_UNROLL_ALL
          for (int k = 0; k < Tile; ++k) {
            if (t0 + k >= n_tokens) continue;
            if (chunks == 1) {
              part.y[(t0 + k) * part.y_stride + r] = sum[k];
            } else {
              partials[((t0 + k) * p.rows + r_all) * chunks + c] = sum[k];
            }
          }
        });
  }
  if (unreduced) *unreduced = {chunks == 1 ? p.part[0].y : partials, p.rows, chunks};
  if (chunks == 1 || unreduced) return;
  e.for_each(n_tokens * p.rows, [=] V4_HD(int64_t i) {
    float acc = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) acc += partials[i * chunks + c];
    int64_t r = i % p.rows;
    const RowPart part = p.find(r);
    part.y[i / p.rows * part.y_stride + r] = acc;
  });
}

// Whether a product of `n_tokens` tokens runs on the tensor cores.
template <class E>
bool use_mma(const DeviceScratch<E>& s, GgmlType type, int64_t n_tokens) {
  return s.options().tensor_cores && kernels::has_int8_units(type) && n_tokens >= kMmaMinTokens;
}

// The parts' product for weight type T, with each row's sum in chunks of `chunk` units. One token
// (batch-1 decode) gets a kernel with a tile of one: fewer registers, more warps in flight. A
// token's sum is the same sequence of operations in either (batch invariance).
template <GgmlType T, class E>
void matmul_parts(E& e, DeviceScratch<E>& s, const RowParts& p, const Activations& a, int64_t cols,
                  int64_t n_tokens, int64_t chunk, UnreducedRows* unreduced = nullptr) {
  if (n_tokens == 1) {
    matmul_typed<T, 1>(e, s, p, a, cols, n_tokens, chunk, false, unreduced);
  } else {
    matmul_typed<T, kMatmulTile>(e, s, p, a, cols, n_tokens, chunk, use_mma(s, T, n_tokens),
                                 unreduced);
  }
}

// y = w · x for the whole matrix: x quantized for w, then the product with each row's sum in
// chunks of `chunk` units (see matmul_typed for `unreduced`).
template <class E>
void whole_matrix_product(E& e, DeviceScratch<E>& s, const char* op, const kernels::MatrixView& w,
                          const float* x, int64_t x_stride, int64_t n_tokens, float* y,
                          int64_t y_stride, int64_t chunk, UnreducedRows* unreduced = nullptr) {
  const Activations a = quantize_activations(e, s, ScratchSlot::kMatmulActivations, w.type, x,
                                             x_stride, w.cols, n_tokens);
  dispatch_weight_type(w.type, op, [&](auto tag) {
    constexpr GgmlType T = decltype(tag)::value;
    matmul_parts<T>(e, s, whole_matrix(w, y, y_stride), a, w.cols, n_tokens, chunk, unreduced);
  });
}

template <class E>
void matmul(E& e, DeviceScratch<E>& s, const kernels::MatrixView& w, const float* x,
            int64_t x_stride, int64_t n_tokens, float* y, int64_t y_stride) {
  if (n_tokens <= 0 || w.rows <= 0) return;
  whole_matrix_product(e, s, "matmul", w, x, x_stride, n_tokens, y, y_stride, chunk_units(w.type));
}

template <class E>
UnreducedRows matmul_unreduced(E& e, DeviceScratch<E>& s, const kernels::MatrixView& w,
                               const float* x, int64_t n_tokens, float* y) {
  UnreducedRows out{y, w.rows, 1};
  if (n_tokens <= 0 || w.rows <= 0) return out;
  whole_matrix_product(e, s, "matmul_unreduced", w, x, w.cols, n_tokens, y, w.rows,
                       chunk_units(w.type), &out);
  return out;
}

// Backend::matmul_split: the same kernels with a split the caller chooses (float weights: a
// multiple of kFloatRun values, as the lanes read them; rounded up to one).
template <class E>
void matmul_split(E& e, DeviceScratch<E>& s, const kernels::MatrixView& w, const float* x,
                  int64_t x_stride, int64_t n_tokens, float* y, int64_t y_stride,
                  int64_t chunk_units) {
  if (n_tokens <= 0 || w.rows <= 0) return;
  const int64_t step = is_float_weight(w.type) ? kFloatRun : 1;
  const int64_t chunk = std::max<int64_t>(step, (chunk_units + step - 1) / step * step);
  whole_matrix_product(e, s, "matmul_split", w, x, x_stride, n_tokens, y, y_stride, chunk);
}

// Backend::matmul_groups: x read as n_tokens·groups activation rows of w.cols values, quantized
// once; up to kMaxRowParts groups per launch.
template <class E>
void matmul_groups(E& e, DeviceScratch<E>& s, const kernels::MatrixView& w, int64_t groups,
                   const float* x, int64_t n_tokens, float* y) {
  if (n_tokens <= 0 || w.rows <= 0 || groups <= 0) return;
  const Activations a = quantize_activations(e, s, ScratchSlot::kMatmulActivations, w.type, x,
                                             w.cols, w.cols, n_tokens * groups);
  const int64_t rows = w.rows / groups;
  dispatch_weight_type(w.type, "matmul_groups", [&](auto tag) {
    constexpr GgmlType T = decltype(tag)::value;
    for (int64_t first = 0; first < groups; first += kMaxRowParts) {
      RowParts p;
      p.row_bytes = w.row_bytes;
      p.q8_0_split = w.q8_0_split;
      p.per_token = groups;
      for (int64_t g = first; g < std::min<int64_t>(groups, first + kMaxRowParts); ++g) {
        p.add(
            {w.data + static_cast<size_t>(g * rows) * w.row_bytes, rows, y + g * rows, w.rows, g});
      }
      matmul_parts<T>(e, s, p, a, w.cols, n_tokens, chunk_units(T));
    }
  });
}

// Backend::matmul_shared: consecutive targets of one weight type and width (up to kMaxRowParts)
// run as one launch; x is quantized again only when the next quantized run's activation format
// differs from the last one quantized.
// `a` holds x already quantized to `quantized`, if anything.
template <class E>
void matmul_shared_from(E& e, DeviceScratch<E>& s, const float* x, int64_t n_tokens,
                        const MatmulTarget* targets, size_t n_targets, Activations a,
                        std::optional<ActivationFormat> quantized) {
  for (size_t first = 0; first < n_targets;) {
    const kernels::MatrixView& w = targets[first].w;
    RowParts p;
    p.row_bytes = w.row_bytes;
    p.q8_0_split = w.q8_0_split;
    size_t next = first;
    for (; next < n_targets && p.count < kMaxRowParts; ++next) {
      const kernels::MatrixView& m = targets[next].w;
      if (m.type != w.type || m.cols != w.cols || m.row_bytes != w.row_bytes ||
          m.q8_0_split != w.q8_0_split)
        break;
      if (m.rows > 0) p.add({m.data, m.rows, targets[next].y, m.rows, 0});
    }
    first = next;
    if (p.count == 0) continue;
    // Float weights read x itself; the quantized rows stay for the runs after them.
    const ActivationFormat f = activation_format(w.type, w.cols);
    Activations run = {reinterpret_cast<const uint8_t*>(x), w.cols * sizeof(float)};
    if (f.kind != ActivationFormat::kFloat) {
      if (!quantized || quantized->kind != f.kind || quantized->row_bytes != f.row_bytes) {
        a = quantize_activations(e, s, ScratchSlot::kMatmulActivations, w.type, x, w.cols, w.cols,
                                 n_tokens);
        quantized = f;
      }
      run = a;
    }
    dispatch_weight_type(w.type, "matmul_shared", [&](auto tag) {
      constexpr GgmlType T = decltype(tag)::value;
      matmul_parts<T>(e, s, p, run, w.cols, n_tokens, chunk_units(T));
    });
  }
}

template <class E>
void matmul_shared(E& e, DeviceScratch<E>& s, const float* x, int64_t n_tokens,
                   const MatmulTarget* targets, size_t n_targets) {
  if (n_tokens <= 0) return;
  matmul_shared_from(e, s, x, n_tokens, targets, n_targets, Activations{}, std::nullopt);
}

// Backend::norm_matmul_shared: a team per row norms it in place (rms_norm_team, as the RMSNorm
// op) and then quantizes it to the format of the first target that has one, in one launch; the
// products follow as matmul_shared runs them (float weights read the normed rows). Where every
// target is a float weight: the RMSNorm op, then the products.
template <class E>
void norm_matmul_shared(E& e, DeviceScratch<E>& s, float* x, const float* norm_weight,
                        int64_t width, float eps, int64_t n_tokens, const MatmulTarget* targets,
                        size_t n_targets) {
  if (n_tokens <= 0) return;
  ActivationFormat f;
  for (size_t i = 0; i < n_targets && f.kind == ActivationFormat::kFloat; ++i)
    f = activation_format(targets[i].w.type, width);
  if (f.kind == ActivationFormat::kFloat) {
    rms_norm(e, s, x, norm_weight, width, n_tokens, eps, x);
    matmul_shared(e, s, x, n_tokens, targets, n_targets);
    return;
  }
  uint8_t* out = activation_rows(s, ScratchSlot::kMatmulActivations, f, n_tokens);
  e.for_each_team(n_tokens, kNormTeam, kNormLanes * sizeof(double),
                  [=] V4_HD(int64_t t, const typename E::Team& team) {
                    float* row = x + t * width;
                    rms_norm_team(team, row, norm_weight, width, eps, row);
                    team.threads([&](int l) {
                      for (int64_t u = l; u < f.units; u += team.size())
                        quantize_unit(f, row, out + t * f.row_bytes, u);
                    });
                  });
  matmul_shared_from(e, s, x, n_tokens, targets, n_targets, Activations{out, f.row_bytes}, f);
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
                                      d, col, m.q8_0_split);
  });
}

}  // namespace v4::device
