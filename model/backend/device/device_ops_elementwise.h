// The device ops that work row by row or element by element (spec §3.1–§3.5): RMSNorm, RoPE,
// scaling, sums, the expert gather and the expert combine. Each index computes its output in the
// CPU backend's order (RMSNorm's sum of squares in double, the combine summed from zero in slot
// order), so the results are the CPU's bit for bit, except RoPE's cos/sin, which the device's
// libm may round differently by an ulp.
#pragma once

#include <math.h>

#include "kernels/cpu/rope.h"
#include "model/backend/device/device_ops.h"
#include "model/backend/device/device_ops_kv_simulation.h"

namespace v4::device {

// Threads of a row's RMSNorm team: kNormLanes sum the squares (a warp's lanes), all apply
// the scale.
inline constexpr int kNormLanes = 32;
inline constexpr int kNormTeam = 256;

template <class E>
void rms_norm(E& e, DeviceScratch<E>& s, const float* x, const float* weight, int64_t n,
              int64_t n_rows, float eps, float* y) {
  // A team per row, one launch: 32 threads sum the squares in fp64, lane-strided, then a tree
  // that is the warp butterfly's order for lane 0 (step o: s[l] = s[l] + s[l + o]), so the sum
  // is the same whatever the batch; the double sum differs from the CPU's sequential one in its
  // last bits only, which the float scale almost never sees. Then each element as the CPU
  // multiplies. `y` may be `x`: every element is read before its own thread writes it.
  if (n_rows <= 0) return;
  e.for_each_team(n_rows, kNormTeam, kNormLanes * sizeof(double),
                  [=] V4_HD(int64_t r, const typename E::Team& team) {
                    double* part = team.template shared<double>();
                    const float* xr = x + r * n;
                    team.threads([&](int l) {
                      if (l >= kNormLanes) return;
                      double acc = 0.0;
                      for (int64_t i = l; i < n; i += kNormLanes) {
                        acc += static_cast<double>(xr[i]) * xr[i];
                      }
                      part[l] = acc;
                    });
                    for (int o = kNormLanes / 2; o > 0; o /= 2) {
                      team.threads([&](int l) {
                        if (l < o) part[l] = part[l] + part[l + o];
                      });
                    }
                    team.threads([&](int l) {
                      const float sc =
                          static_cast<float>(1.0 / sqrt(part[0] / static_cast<double>(n) + eps));
                      for (int64_t i = l; i < n; i += team.size()) {
                        y[r * n + i] = xr[i] * sc * (weight ? weight[i] : 1.0f);
                      }
                    });
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
