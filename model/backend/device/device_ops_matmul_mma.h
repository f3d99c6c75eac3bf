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

inline constexpr int kMmaTeam = 256;       // one thread per output of a 16×16 tile
inline constexpr int kMmaRoundUnits = 16;  // units loaded, multiplied and finished per round
inline constexpr int kMmaSlots = 7;        // per output: the open lane's sum, a stack of 6
inline constexpr int kMmaLanes = 32;       // of the warp kernels whose order is reproduced
inline constexpr size_t kMmaAlign = 128;   // the WMMA operands need 32-byte alignment
inline constexpr size_t kMmaUnitBytes = 2 * kernels::kMmaHalfBytes;  // a unit's 16×32 operand
inline constexpr size_t kMmaSharedBytes = kMmaAlign + 2 * kMmaRoundUnits * kMmaUnitBytes +
                                          kMmaRoundUnits * kMmaTeam * sizeof(int32_t) +
                                          kMmaSlots * kMmaTeam * sizeof(float);

// The lane whose sum is the i-th leaf of the butterfly's tree.
V4_HD inline int mma_leaf_lane(int i) {
  int l = 0;
  for (int b = 0; b < 5; ++b) l |= ((i >> b) & 1) << (4 - b);
  return l;
}

// Units lane l takes of a chunk of n units (l, l+32, …).
V4_HD inline int64_t mma_lane_units(int64_t n, int l) { return l < n ? (n - l + 31) / 32 : 0; }

// Walks a chunk's units in the order the tile adds them: leaf by leaf, each leaf's lane's units
// in order. `leaf` is the current unit's leaf, `j` its index among its lane's units.
struct MmaUnitWalk {
  int64_t n;
  int leaf = 0;
  int64_t j = 0;

  // Positioned at the p-th unit (p < n) of the order.
  V4_HD MmaUnitWalk(int64_t n_units, int64_t p) : n(n_units) {
    while (p >= mma_lane_units(n, mma_leaf_lane(leaf)))
      p -= mma_lane_units(n, mma_leaf_lane(leaf++));
    j = p;
  }
  V4_HD int64_t unit() const { return mma_leaf_lane(leaf) + 32 * j; }
  V4_HD void next() {
    if (++j < mma_lane_units(n, mma_leaf_lane(leaf))) return;
    j = 0;
    while (++leaf < kMmaLanes && mma_lane_units(n, mma_leaf_lane(leaf)) == 0) {
    }
  }
};

// Closes leaf i of an output: its lane sum `acc` joins the stack, and complete subtrees are
// summed (left + right, as the butterfly pairs them). popcount(i) sums are on the stack before.
V4_HD inline void mma_close_leaf(int i, float& acc, float* stack) {
  int depth = 0;
  for (int b = 0; b < 5; ++b) depth += (i >> b) & 1;
  stack[depth++] = acc;
  for (int c = i + 1; (c & 1) == 0; c >>= 1, --depth)
    stack[depth - 2] = stack[depth - 2] + stack[depth - 1];
  acc = 0.0f;
}

// A tile's work: weight rows [0, rows) from `w`, tokens [0, tokens) from `a` (quantized rows as
// the warp kernels read them), units [begin, end) of rows of `units` units; output (t, r) goes
// to out[t * token_stride + r * row_stride].
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
};

// One round's operands: unit k's weight rows and activation rows, each as the two k-halves
// int8_mma.h multiplies.
template <GgmlType T>
V4_HD inline void mma_load_round(const MmaTile& job, const kernels::QuantTables& tables,
                                 int64_t first, int64_t count, int8_t* wq, int8_t* aq, int th) {
  const int k = th / kernels::kMmaTile, i = th % kernels::kMmaTile;
  int8_t w[32] = {}, a[32] = {};
  if (k < count) {
    const int64_t u = job.begin + MmaUnitWalk(job.end - job.begin, first + k).unit();
    if (i < job.rows) kernels::unit_weights_i8<T>(job.w + i * job.w_row_bytes, u, tables, w);
    if (i < job.tokens)
      memcpy(a, kernels::unit_activation_i8<T>(job.a + i * job.a_row_bytes, u), 32);
  }
  for (int h = 0; h < 2; ++h) {
    memcpy(wq + k * kMmaUnitBytes + h * kernels::kMmaHalfBytes + i * kernels::kMmaTile, w + 16 * h,
           16);
    memcpy(aq + k * kMmaUnitBytes + h * kernels::kMmaHalfBytes + i * kernels::kMmaTile, a + 16 * h,
           16);
  }
}

// Output th adds the round's units in order; leaves before a unit's own are closed first.
template <GgmlType T>
V4_HD inline void mma_finish_round(const MmaTile& job, int64_t first, int64_t count,
                                   const int32_t* sums, float* state, int th) {
  const int r = th / kernels::kMmaTile, t = th % kernels::kMmaTile;
  if (r >= job.rows || t >= job.tokens) return;
  const int64_t n = job.end - job.begin;
  float acc = state[th], stack[kMmaSlots - 1];
  for (int s = 1; s < kMmaSlots; ++s) stack[s - 1] = state[s * kMmaTeam + th];
  int open = first == 0 ? 0 : MmaUnitWalk(n, first - 1).leaf;
  const uint8_t* w_row = job.w + r * job.w_row_bytes;
  const uint8_t* a_row = job.a + t * job.a_row_bytes;
  MmaUnitWalk walk(n, first);
  for (int64_t k = 0; k < count; ++k, walk.next()) {
    for (; open < walk.leaf; ++open) mma_close_leaf(open, acc, stack);
    acc += kernels::unit_finish<T>(w_row, a_row, job.units, job.begin + walk.unit(),
                                   sums[k * kMmaTeam + th]);
  }
  if (first + count == n) {
    for (; open < kMmaLanes; ++open) mma_close_leaf(open, acc, stack);
    job.out[t * job.token_stride + r * job.row_stride] = stack[0];
    return;
  }
  state[th] = acc;
  for (int s = 1; s < kMmaSlots; ++s) state[s * kMmaTeam + th] = stack[s - 1];
}

// The tile, by a team of kMmaTeam threads with kMmaSharedBytes of shared memory.
template <GgmlType T, class Team>
V4_HD inline void mma_tile(const MmaTile& job, const kernels::QuantTables& tables,
                           const Team& team) {
  uint8_t* base = team.template shared<uint8_t>();
  base += (kMmaAlign - reinterpret_cast<uintptr_t>(base) % kMmaAlign) % kMmaAlign;
  int8_t* wq = reinterpret_cast<int8_t*>(base);
  int8_t* aq = wq + kMmaRoundUnits * kMmaUnitBytes;
  int32_t* sums = reinterpret_cast<int32_t*>(aq + kMmaRoundUnits * kMmaUnitBytes);
  float* state = reinterpret_cast<float*>(sums + kMmaRoundUnits * kMmaTeam);
  team.threads([&](int th) {
    for (int s = 0; s < kMmaSlots; ++s) state[s * kMmaTeam + th] = 0.0f;
  });
  const int64_t n = job.end - job.begin;
  for (int64_t first = 0; first < n; first += kMmaRoundUnits) {
    const int64_t count = n - first < kMmaRoundUnits ? n - first : kMmaRoundUnits;
    team.threads([&](int th) { mma_load_round<T>(job, tables, first, count, wq, aq, th); });
    team.threads([&](int th) {
      const int warp = th / 32, lane = th % 32;
      for (int64_t k = warp; k < count; k += kMmaTeam / 32) {
        kernels::warp_mma_16x16x32(lane, wq + k * kMmaUnitBytes, aq + k * kMmaUnitBytes,
                                   sums + k * kMmaTeam);
      }
    });
    team.threads([&](int th) { mma_finish_round<T>(job, first, count, sums, state, th); });
  }
}

}  // namespace v4::device
