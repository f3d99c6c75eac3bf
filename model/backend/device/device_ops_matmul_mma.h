// The quantized products of prefill and large batches on the integer tensor cores, bit-identical
// to the warp kernels of device_ops_matmul.h (spec §6; design: "Tensor cores without a second
// rounding").
//
// A warp kernel's output is a fixed float procedure over the row's units: lane l adds the
// values of units l, l+32, … of its chunk in order, then the 32 lane sums meet in the warp's
// butterfly (l with l^16, then l^8, …). A unit's value is an exact integer sum of 32 int8
// products, then a float expression of the unit's scales (kernels/device/quant_dot.h finish_*).
// Here a team of 256 threads computes a tile of 16 weight rows × 16 tokens:
//   - the integer sums come from the tensor cores (kernels/device/int8_mma.h), exact, so equal
//     to the lane loops' whatever order the hardware sums in;
//   - each output then adds its units' values in the warp kernel's order: lane by lane in the
//     order in which the butterfly pairs them (bit reversal of 0..31, which makes the butterfly
//     a binary tree over that order), each lane's units in order, and the lane sums folded into
//     that tree as they complete (a stack of at most 6 partial sums per output).
// So a token's outputs are the same bits whichever kernel ran, and the choice between them may
// depend on the batch without breaking batch invariance.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/hd.h"
#include "kernels/device/int8_mma.h"
#include "kernels/device/quant_units_i8.h"

namespace v4::device {

inline constexpr int kMmaTeam = 256;          // one thread per output of a 16×16 tile
inline constexpr int kMmaRoundUnits = 16;     // units loaded, multiplied and finished per round
inline constexpr int kMmaSlots = 7;           // per output: the open lane's sum, a stack of 6
inline constexpr int kMmaLanes = 32;          // of the warp kernels whose order is reproduced
inline constexpr int64_t kMmaMaxUnits = 512;  // units of a chunk (the forward's chunks: 512)
inline constexpr size_t kMmaAlign = 128;      // the WMMA operands need 32-byte alignment
inline constexpr size_t kMmaUnitBytes = 2 * kernels::kMmaHalfBytes;  // a unit's 16×32 operand
inline constexpr size_t kMmaSharedBytes =
    kMmaAlign + 2 * kMmaRoundUnits * kMmaUnitBytes + kMmaRoundUnits * kMmaTeam * sizeof(int32_t) +
    kMmaSlots * kMmaTeam * sizeof(float) + kMmaMaxUnits * (sizeof(int16_t) + sizeof(uint8_t));

// The lane whose sum is the i-th leaf of the butterfly's tree.
V4_HD inline int mma_leaf_lane(int i) {
  int l = 0;
  for (int b = 0; b < 5; ++b) l |= ((i >> b) & 1) << (4 - b);
  return l;
}

// Units lane l takes of a chunk of n units (l, l+32, …).
V4_HD inline int64_t mma_lane_units(int64_t n, int l) { return l < n ? (n - l + 31) / 32 : 0; }

// Where unit u (of a chunk of n units) comes in the order the tile adds them: leaf by leaf, each
// leaf's lane's units in order. Its leaf is returned in `leaf`.
V4_HD inline int64_t mma_unit_position(int64_t n, int64_t u, int* leaf) {
  const int l = static_cast<int>(u % kMmaLanes);
  *leaf = mma_leaf_lane(l);  // bit reversal is its own inverse
  int64_t before = 0;
  for (int i = 0; i < *leaf; ++i) before += mma_lane_units(n, mma_leaf_lane(i));
  return before + u / kMmaLanes;
}

// Closes leaf i of an output: its lane sum `acc` joins the stack, and complete subtrees are
// summed (left + right, as the butterfly pairs them). popcount(i) sums are on the stack before.
V4_HD inline void mma_close_leaf(int i, float& acc, float* stack) {
  int depth = 0;
  for (int b = 0; b < 5; ++b) depth += (i >> b) & 1;
  stack[depth++] = acc;
  for (int c = i + 1; (c & 1) == 0; c >>= 1, --depth) {
    stack[depth - 2] = stack[depth - 2] + stack[depth - 1];
  }
  acc = 0.0f;
}

// A tile's work: weight rows [0, rows) from `w`, tokens [0, tokens) from `a` (quantized rows as
// the warp kernels read them), units [begin, end) of rows of `units` units (end - begin at most
// kMmaMaxUnits); output (t, r) goes to out[t * token_stride + r * row_stride].
struct MmaTile {
  const uint8_t* w = nullptr;
  size_t w_row_bytes = 0;
  int64_t rows = 0;
  const uint8_t* a = nullptr;
  size_t a_row_bytes = 0;
  int64_t tokens = 0;
  int64_t units = 0, begin = 0, end = 0;
  float* out = nullptr;
  int64_t token_stride = 0, row_stride = 0;
  bool q8_0_split = false;  // the weight rows' layout (see MatrixView)
};

// The team's shared memory: one round's operands (unit k's weight rows and activation rows,
// each as the two k-halves int8_mma.h multiplies) and integer sums, every output's partial sums,
// and the chunk's order (the unit at each position, and its leaf).
struct MmaShared {
  int8_t* wq;
  int8_t* aq;
  int32_t* sums;
  float* state;  // [slot][output]
  int16_t* order_unit;
  uint8_t* order_leaf;
};

template <class Team>
V4_HD inline MmaShared mma_shared(const Team& team) {
  uint8_t* base = team.template shared<uint8_t>();
  base += (kMmaAlign - reinterpret_cast<uintptr_t>(base) % kMmaAlign) % kMmaAlign;
  MmaShared m;
  m.wq = reinterpret_cast<int8_t*>(base);
  m.aq = m.wq + kMmaRoundUnits * kMmaUnitBytes;
  m.sums = reinterpret_cast<int32_t*>(m.aq + kMmaRoundUnits * kMmaUnitBytes);
  m.state = reinterpret_cast<float*>(m.sums + kMmaRoundUnits * kMmaTeam);
  m.order_unit = reinterpret_cast<int16_t*>(m.state + kMmaSlots * kMmaTeam);
  m.order_leaf = reinterpret_cast<uint8_t*>(m.order_unit + kMmaMaxUnits);
  return m;
}

// Units per round for type T: the integer sums of a round fill the same memory whichever the
// number of sums per unit.
template <GgmlType T>
constexpr int mma_round_units() {
  return kMmaRoundUnits / kernels::unit_sums(T);
}

template <GgmlType T>
V4_HD inline void mma_load_round(const MmaTile& job, const kernels::QuantTables& tables,
                                 int64_t first, int64_t count, const MmaShared& m, int th) {
  const int k = th / kernels::kMmaTile, i = th % kernels::kMmaTile;
  int8_t w[32] = {}, a[32] = {};
  if (k < count) {
    const int64_t u = job.begin + m.order_unit[first + k];
    if (i < job.rows) {
      kernels::unit_weights_i8<T>(job.w + i * job.w_row_bytes, u, tables, w, job.q8_0_split);
    }
    if (i < job.tokens) {
      memcpy(a, kernels::unit_activation_i8<T>(job.a + i * job.a_row_bytes, u), 32);
    }
  }
  const size_t at = k * kMmaUnitBytes + i * kernels::kMmaTile;
  for (int h = 0; h < 2; ++h) {
    memcpy(m.wq + at + h * kernels::kMmaHalfBytes, w + 16 * h, 16);
    memcpy(m.aq + at + h * kernels::kMmaHalfBytes, a + 16 * h, 16);
  }
}

// Output th adds the round's units in order; leaves before a unit's own are closed first.
template <GgmlType T>
V4_HD inline void mma_finish_round(const MmaTile& job, int64_t first, int64_t count,
                                   const MmaShared& m, int th) {
  const int r = th / kernels::kMmaTile, t = th % kernels::kMmaTile;
  if (r >= job.rows || t >= job.tokens) return;
  float acc = m.state[th], stack[kMmaSlots - 1];
  for (int s = 1; s < kMmaSlots; ++s) stack[s - 1] = m.state[s * kMmaTeam + th];
  int open = first == 0 ? 0 : m.order_leaf[first - 1];
  const uint8_t* w_row = job.w + r * job.w_row_bytes;
  const uint8_t* a_row = job.a + t * job.a_row_bytes;
  constexpr int kSums = kernels::unit_sums(T);
  for (int64_t k = 0; k < count; ++k) {
    for (; open < m.order_leaf[first + k]; ++open) mma_close_leaf(open, acc, stack);
    int32_t isums[kSums];
    for (int h = 0; h < kSums; ++h) isums[h] = m.sums[(k * kSums + h) * kMmaTeam + th];
    acc += kernels::unit_finish<T>(w_row, a_row, job.units, job.begin + m.order_unit[first + k],
                                   isums, job.q8_0_split);
  }
  if (first + count == job.end - job.begin) {
    for (; open < kMmaLanes; ++open) mma_close_leaf(open, acc, stack);
    job.out[t * job.token_stride + r * job.row_stride] = stack[0];
    return;
  }
  m.state[th] = acc;
  for (int s = 1; s < kMmaSlots; ++s) m.state[s * kMmaTeam + th] = stack[s - 1];
}

// The tile, by a team of kMmaTeam threads with kMmaSharedBytes of shared memory.
template <GgmlType T, class Team>
V4_HD inline void mma_tile(const MmaTile& job, const kernels::QuantTables& tables,
                           const Team& team) {
  const MmaShared m = mma_shared(team);
  const int64_t n = job.end - job.begin;
  team.threads([&](int th) {
    for (int s = 0; s < kMmaSlots; ++s) m.state[s * kMmaTeam + th] = 0.0f;
    for (int64_t u = th; u < n; u += kMmaTeam) {
      int leaf = 0;
      const int64_t p = mma_unit_position(n, u, &leaf);
      m.order_unit[p] = static_cast<int16_t>(u);
      m.order_leaf[p] = static_cast<uint8_t>(leaf);
    }
  });
  constexpr int kRound = mma_round_units<T>(), kSums = kernels::unit_sums(T);
  for (int64_t first = 0; first < n; first += kRound) {
    const int64_t count = n - first < kRound ? n - first : kRound;
    team.threads([&](int th) { mma_load_round<T>(job, tables, first, count, m, th); });
    team.threads([&](int th) {
      const int warp = th / 32, lane = th % 32;
      for (int64_t k = warp; k < count; k += kMmaTeam / 32) {
        kernels::warp_mma_16x16x32<kSums == 2>(lane, m.wq + k * kMmaUnitBytes,
                                               m.aq + k * kMmaUnitBytes,
                                               m.sums + k * kSums * kMmaTeam);
      }
    });
    team.threads([&](int th) { mma_finish_round<T>(job, first, count, m, th); });
  }
}

}  // namespace v4::device
