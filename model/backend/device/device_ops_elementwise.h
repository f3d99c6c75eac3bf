// The device ops that work row by row or element by element (spec §3.1–§3.5): RMSNorm, RoPE,
// scaling, sums, the expert gather and the expert combine. Each index computes its output in the
// CPU backend's order (RMSNorm's sum of squares in double, the combine summed from zero in slot
// order), so the results are the CPU's bit for bit, except RoPE's cos/sin, which the device's
// libm may round differently by an ulp.
#pragma once

#include <math.h>

#include <algorithm>

#include "kernels/cpu/rope.h"
#include "model/backend/device/device_ops.h"
#include "model/backend/device/device_ops_kv_simulation.h"

namespace v4::device {

// Threads of a row's RMSNorm team: kNormLanes sum the squares, all apply the scale. Four warps'
// lanes: a row is read by four times the loads in flight of one warp's, which is what a team
// alone on its GPU multiprocessor waits on (a decode step's one or few rows of 4096 or 16384
// values), and every team that norms (the smallest has 128 threads) sums in the same order.
inline constexpr int kNormLanes = 128;
inline constexpr int kNormTeam = 256;
static_assert(kNormTeam >= kNormLanes);

// 1/sqrt(mean(x²) + eps) of one row of n values over a team, `part` kNormLanes doubles of its
// shared memory: kNormLanes threads sum the squares in fp64, lane-strided, then a tree (step o:
// s[l] = s[l] + s[l + o]), so the sum is the same whatever the batch or the team's size; the
// double sum differs from the CPU's sequential one in its last bits only, which the float scale
// almost never sees. Every thread gets the scale; `part` must not be written again before they
// have all read it (the next team.threads phase).
template <class Team>
V4_HD float rms_scale_team(const Team& team, const float* x, int64_t n, float eps, double* part) {
  team.threads([&](int l) {
    if (l >= kNormLanes) return;
    double acc = 0.0;
    for (int64_t i = l; i < n; i += kNormLanes) acc += static_cast<double>(x[i]) * x[i];
    part[l] = acc;
  });
  for (int o = kNormLanes / 2; o > 0; o /= 2) {
    team.threads([&](int l) {
      if (l < o) part[l] = part[l] + part[l + o];
    });
  }
  return static_cast<float>(1.0 / sqrt(part[0] / static_cast<double>(n) + eps));
}

// The RMSNorm of one row of n values over a team (kNormLanes doubles of shared memory): the scale
// of rms_scale_team, then each element as the CPU multiplies. `y` may be `x`: every element is
// read before its own thread writes it.
template <class Team>
V4_HD void rms_norm_team(const Team& team, const float* x, const float* weight, int64_t n,
                         float eps, float* y) {
  const float sc = rms_scale_team(team, x, n, eps, team.template shared<double>());
  team.threads([&](int l) {
    for (int64_t i = l; i < n; i += team.size()) y[i] = x[i] * sc * (weight ? weight[i] : 1.0f);
  });
}

template <class E>
void rms_norm(E& e, DeviceScratch<E>& s, const float* x, const float* weight, int64_t n,
              int64_t n_rows, float eps, float* y) {
  // A team per row, one launch.
  if (n_rows <= 0) return;
  e.for_each_team(n_rows, kNormTeam, kNormLanes * sizeof(double),
                  [=] V4_HD(int64_t r, const typename E::Team& team) {
                    rms_norm_team(team, x + r * n, weight, n, eps, y + r * n);
                  });
}

template <class E>
void rope(E& e, DeviceScratch<E>& s, float* x, int64_t n_tokens, int64_t heads, int64_t head_stride,
          int64_t offset, int64_t rope_dim, const uint64_t* positions, const float* freqs,
          bool inverse) {
  const int64_t pairs = rope_dim / 2;
  e.for_each(n_tokens * heads * pairs, [=] V4_HD(int64_t i) {
    const int64_t row = i / pairs;
    kernels::rope_rotate_pair(x + row * head_stride + offset, freqs, i % pairs,
                              positions[row / heads], inverse);
  });
}

// Threads of the team that transforms one head vector (Backend::transform_heads).
inline constexpr int kHeadTeam = 128;
static_assert(kHeadTeam >= kNormLanes);

// transform_heads' team on head vector v (of n_tokens × heads at x): its token is v / heads.
template <class Team>
V4_HD void transform_head(const Team& team, float* x, int64_t heads, int64_t head_dim,
                          const HeadTransform& t, int64_t v) {
  const int64_t pairs = t.rope_dim / 2, rotated_from = head_dim - t.rope_dim;
  float* row = x + v * head_dim;
  if (t.norm) rms_norm_team(team, row, t.norm_weight, head_dim, t.eps, row);
  const uint64_t pos = t.positions[v / heads];
  team.threads([&](int l) {
    for (int64_t p = l; p < pairs; p += team.size()) {
      kernels::rope_rotate_pair(row + rotated_from, t.freqs, p, pos, false);
    }
  });
  if (t.fp8_block > 0) {
    const int64_t block = t.fp8_block;
    team.threads([&](int l) {
      for (int64_t b0 = l * block; b0 < rotated_from; b0 += team.size() * block) {
        const int64_t len = rotated_from - b0 < block ? rotated_from - b0 : block;
        kernels::fp8_round_trip(row + b0, len, block);
      }
    });
  }
  if (t.qat) {
    hadamard_team(team, row, head_dim);
    team.threads([&](int l) {
      for (int64_t b0 = l * kFp4Block; b0 < head_dim; b0 += team.size() * kFp4Block) {
        const int64_t len = head_dim - b0 < kFp4Block ? head_dim - b0 : kFp4Block;
        kernels::fp4_round_trip(row + b0, len, kFp4Block);
      }
    });
  }
}

// One launch of transform_heads: its tensors by value, and where each one's teams start.
struct HeadRowsLaunch {
  HeadRows rows[kMaxHeadRows];
  int64_t first_team[kMaxHeadRows + 1];
};

// Backend::transform_heads in one launch per kMaxHeadRows tensors: a team per head vector runs
// rms_norm_team, then a thread per RoPE pair, then an FP8 block per thread (each block's
// rounding is its own) or the QAT (hadamard_team and the FP4 blocks, as indexer_qat runs them).
// Every value goes through the same functions in the same order as the separate ops give it,
// so the bits are theirs; which tensors share the launch changes none.
template <class E>
void transform_heads(E& e, DeviceScratch<E>& s, int64_t n_tokens, std::span<const HeadRows> rows) {
  if (n_tokens <= 0) return;
  for (size_t first = 0; first < rows.size(); first += kMaxHeadRows) {
    HeadRowsLaunch job{};
    const size_t count = std::min(kMaxHeadRows, rows.size() - first);
    for (size_t j = 0; j < count; ++j) {
      job.rows[j] = rows[first + j];
      job.first_team[j + 1] = job.first_team[j] + n_tokens * rows[first + j].heads;
    }
    for (size_t j = count; j < kMaxHeadRows; ++j) job.first_team[j + 1] = job.first_team[j];
    if (job.first_team[kMaxHeadRows] == 0) continue;
    e.for_each_team(job.first_team[kMaxHeadRows], kHeadTeam, kNormLanes * sizeof(double),
                    [=] V4_HD(int64_t i, const typename E::Team& team) {
                      size_t j = 0;
                      while (i >= job.first_team[j + 1]) ++j;
                      const HeadRows& r = job.rows[j];
                      transform_head(team, r.x, r.heads, r.head_dim, r.t, i - job.first_team[j]);
                    });
  }
}

template <class E>
void scale(E& e, DeviceScratch<E>& s, float* x, int64_t n, float factor) {
  e.for_each(n, [=] V4_HD(int64_t i) { x[i] *= factor; });
}

template <class E>
void add(E& e, DeviceScratch<E>& s, const float* a, int64_t n, float* y) {
  e.for_each(n, [=] V4_HD(int64_t i) { y[i] += a[i]; });
}

template <class E>
void gather_rows(E& e, DeviceScratch<E>& s, const float* src, int64_t width, const int64_t* rows,
                 int64_t n, float* dst) {
  e.for_each(n * width,
             [=] V4_HD(int64_t i) { dst[i] = src[rows[i / width] * width + i % width]; });
}

template <class E>
void copy_rows(E& e, DeviceScratch<E>& s, const float* src, int64_t src_stride, const int64_t* rows,
               int64_t n, int64_t width, float* dst, int64_t dst_stride) {
  e.for_each(n * width, [=] V4_HD(int64_t i) {
    const int64_t r = i / width, c = i % width;
    dst[r * dst_stride + c] = src[(rows ? rows[r] : r) * src_stride + c];
  });
}

template <class E>
void sum_slots(E& e, DeviceScratch<E>& s, const float* slots, const int64_t* slot_rows,
               int64_t n_tokens, uint32_t k, int64_t width, float* out) {
  e.for_each(n_tokens * width, [=] V4_HD(int64_t i) {
    const int64_t t = i / width, d = i % width;
    float acc = 0.0f;
    for (uint32_t slot = 0; slot < k; ++slot) acc += slots[slot_rows[t * k + slot] * width + d];
    out[i] = acc;
  });
}

}  // namespace v4::device
