// The device's sparse attention (spec §3.4): each token's query heads over its raw window and
// its compressed rows, with the heads' sinks, then the output RoPE undone. Every value is the
// CPU's (kernels/cpu/attend_heads.cpp) bit for bit but for the device's expf, in three launches
// whose reads are coalesced, so a long context costs bandwidth rather than latency:
//  1. the rows each token reads, in the CPU's order (pointers), and how many;
//  2. the scores: a warp per (token, row, kScoreHeads heads). Lane l takes the row's values l,
//     l + 32, … — float_dot's lanes (kernels/cpu/float_dot_lanes.h) — so the warp's butterfly is
//     float_dot's tree. The warp reads the row once for all its heads, decoding an encoded row
//     value by value; the first head group's warp writes the decoded row for launch 3;
//  3. a team per (token, head): the softmax with the sink (the maximum over its threads, the
//     exponentials in parallel, and one thread summing the denominator in row order, as the CPU
//     does), then each output value summed over the rows in order, kAttendValues a thread, and
//     the RoPE of the head's tail undone.
#pragma once

#include <math.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/float_dot_lanes.h"
#include "kernels/cpu/rope.h"
#include "model/backend/device/device_ops_attention.h"

namespace v4::device {

// Heads whose scores one warp computes from the row it reads once.
inline constexpr int kScoreHeads = 8;

// Host-side bound on a token's compressed rows in layer l: the indexer's k, or every finished row.
inline int64_t most_compressed_rows(const KvLayerAddress& l, const KvStep& step, uint32_t top_k) {
  return l.ratio == 0   ? 0
         : l.ratio == 4 ? top_k
                        : static_cast<int64_t>(step.position_end / l.ratio);
}

// What token t attends to: the raw rows of its window from position `first` on (n_raw of them),
// then `count` compressed rows.
struct TokenRows {
  uint64_t first = 0;
  int64_t n_raw = 0;
  uint32_t count = 0;
};

V4_HD inline TokenRows token_rows(const KvLayerAddress& l, const KvStep& st, uint32_t window,
                                  const uint32_t* chosen_count, int64_t t) {
  const uint64_t pos = st.positions[t];
  TokenRows r;
  r.first = pos + 1 > window ? pos + 1 - window : 0;
  r.n_raw = static_cast<int64_t>(pos - r.first + 1);
  r.count = visible_compressed_rows(l, st, chosen_count, t);
  return r;
}

// The page row of token t's c-th compressed row: the indexer's choice on ratio-4 layers, else the
// c-th finished row.
V4_HD inline const uint8_t* compressed_row(const KvPageFormat& f, const KvLayerAddress& l,
                                           const KvStep& st, const uint32_t* chosen, uint32_t top_k,
                                           int64_t t, int64_t c) {
  const uint64_t index = l.ratio == 4 ? chosen[t * top_k + c] : static_cast<uint64_t>(c);
  return kv_main_row(f, l, st.sequences[st.sequence_of[t]], index);
}

// std::max's choice (b when a < b, else a; a NaN b is passed over). The CPU's softmax folds its
// maximum from the sink in row order; folding parts of the rows first and then the parts gives
// the same value for any split (a NaN sink stays, NaN scores are passed over). Only the sign of
// a zero maximum may differ, and no result sees it: x − (+0) and x − (−0) differ only for
// x = −0, as −0 and +0, whose expf are both 1.
V4_HD inline float ordered_max(float a, float b) { return a < b ? b : a; }

// A group of a step's tokens and the scratch their attention uses (sparse_attention sizes it).
struct AttentionScratch {
  const float** rows = nullptr;  // [n][slice] the rows each token reads
  uint32_t* total = nullptr;     // [n] how many
  float* decoded = nullptr;      // [n][most][head_dim] decoded compressed rows (encoded pages)
  float* scores = nullptr;       // [n][n_head][slice] scores, then softmax weights
};

// Launches 1 and 2: the rows, then every (token, head, row) score, scaled.
template <class E>
void attention_scores(E& e, const KvPageFormat& f, const KvLayerAddress& l, const KvStep& step,
                      uint32_t window, const float* q, int64_t n_head, const uint32_t* chosen,
                      const uint32_t* chosen_count, uint32_t top_k, const AttentionScratch& a) {
  const int64_t n = step.n_tokens, hd = f.shape.head_dim;
  const int64_t most = most_compressed_rows(l, step, top_k);
  const int64_t slice = window + most;
  const bool raw_f32 = f.storage == KvStorage::kF32;
  const KvPageFormat fmt = f;
  const KvLayerAddress layer = l;
  const KvStep st = step;
  const AttentionScratch s = a;
  e.for_each(n * slice, [=] V4_HD(int64_t idx) {
    const int64_t t = idx / slice, j = idx % slice;
    const TokenRows r = token_rows(layer, st, window, chosen_count, t);
    if (j == 0) s.total[t] = static_cast<uint32_t>(r.n_raw) + r.count;
    if (j < r.n_raw) {
      const KvSequenceView& seq = st.sequences[st.sequence_of[t]];
      s.rows[idx] = kv_raw_row(seq, layer.raw_slot, static_cast<uint32_t>(hd), r.first + j);
      return;
    }
    const int64_t c = j - r.n_raw;
    if (c >= r.count) {
      s.rows[idx] = nullptr;
    } else if (raw_f32) {
      s.rows[idx] =
          reinterpret_cast<const float*>(compressed_row(fmt, layer, st, chosen, top_k, t, c));
    } else {
      s.rows[idx] = s.decoded + (t * most + c) * hd;  // written by the scores' first head group
    }
  });
  const int64_t groups = (n_head + kScoreHeads - 1) / kScoreHeads;
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));
  e.template warp_sums<kScoreHeads>(
      n * groups * slice,
      [=] V4_HD(int64_t i, int lane, float* acc) {
        const int64_t j = i % slice, t = i / slice / groups, g = i / slice % groups;
        const TokenRows r = token_rows(layer, st, window, chosen_count, t);
        if (j >= r.n_raw + r.count) return;
        const float* row = s.rows[t * slice + j];
        const uint8_t* encoded =
            raw_f32 || j < r.n_raw ? nullptr
                                   : compressed_row(fmt, layer, st, chosen, top_k, t, j - r.n_raw);
        float* keep = encoded && g == 0 ? s.decoded + (t * most + j - r.n_raw) * hd : nullptr;
        const float* qg = q + (t * n_head + g * kScoreHeads) * hd;
        const int64_t heads =
            n_head - g * kScoreHeads < kScoreHeads ? n_head - g * kScoreHeads : kScoreHeads;
        for (int64_t d = lane; d < hd; d += kernels::kFloatDotLanes) {
          const float v =
              encoded ? decode_main_value(fmt.storage, fmt.shape, encoded, static_cast<uint32_t>(d))
                      : row[d];
          if (keep) keep[d] = v;
          V4_UNROLL_ALL
          for (int u = 0; u < kScoreHeads; ++u) {
            if (u >= heads) break;
            const float product = qg[u * hd + d] * v;
            acc[u] = acc[u] + product;
          }
        }
      },
      [=] V4_HD(int64_t i, const float* sum) {
        const int64_t j = i % slice, t = i / slice / groups, g = i / slice % groups;
        if (j >= s.total[t]) return;
        const int64_t heads =
            n_head - g * kScoreHeads < kScoreHeads ? n_head - g * kScoreHeads : kScoreHeads;
        for (int64_t u = 0; u < heads; ++u)
          s.scores[(t * n_head + g * kScoreHeads + u) * slice + j] = sum[u] * scale;
      });
}

// Threads of a (token, head)'s team in launch 3.
inline constexpr int kAttendTeam = 256;
// Output values a thread of that team sums at once: one pass over the rows' weights and
// pointers serves them all.
inline constexpr int kAttendValues = 2;

// Launch 3, a team per (token, head): the softmax with the sink logit (not scaled) over the
// head's scores, then its output values, then (undo_rope) the RoPE pairs of the head's tail
// rotated back, as rope() would. The weights replace the scores. The maximum is folded per
// thread, then over the threads (the same value for any split, ordered_max); the denominator
// is summed in row order by one thread, and each output value over the rows in order, divided
// by it: the CPU's operations in the CPU's order.
template <class E>
void attention_weights_output(E& e, int64_t n, int64_t n_head, int64_t hd, int64_t slice,
                              const float* sinks, const OutputRope* undo_rope,
                              const AttentionScratch& a, float* o) {
  const AttentionScratch s = a;
  const OutputRope rot = undo_rope ? *undo_rope : OutputRope{};
  const int64_t rotated_from = undo_rope ? hd - rot.rope_dim : hd;
  constexpr int kTeam = kAttendTeam;
  const size_t shared = static_cast<size_t>(kTeam + 2 + hd) * sizeof(float);
  e.for_each_team(n * n_head, kTeam, shared, [=] V4_HD(int64_t th, const typename E::Team& team) {
    float* part = team.template shared<float>();  // each thread's maximum, then the maximum
    float* den = part + kTeam + 1;
    float* values = den + 1;  // the head's output values, before the division
    float* sc = s.scores + th * slice;
    const int64_t t = th / n_head;
    const uint32_t seen = s.total[t];
    const float sink = sinks[th % n_head];
    team.threads([&](int l) {
      float mx = sink;
      for (uint32_t j = static_cast<uint32_t>(l); j < seen; j += kTeam) mx = ordered_max(mx, sc[j]);
      part[l] = mx;
    });
    team.threads([&](int l) {
      if (l != 0) return;
      float mx = part[0];
      for (int k = 1; k < kTeam; ++k) mx = ordered_max(mx, part[k]);
      part[kTeam] = mx;
    });
    team.threads([&](int l) {
      for (uint32_t j = static_cast<uint32_t>(l); j < seen; j += kTeam)
        sc[j] = expf(sc[j] - part[kTeam]);
    });
    const float* const* rows = s.rows + t * slice;
    team.threads([&](int l) {
      if (l == 0) {
        float sum = expf(sink - part[kTeam]);
        for (uint32_t j = 0; j < seen; ++j) sum = sum + sc[j];
        *den = sum;
      }
      for (int64_t d0 = l; d0 < hd; d0 += kAttendValues * kTeam) {
        float acc[kAttendValues] = {};
        for (uint32_t j = 0; j < seen; ++j) {
          const float w = sc[j];
          const float* row = rows[j];
          V4_UNROLL_ALL
          for (int v = 0; v < kAttendValues; ++v) {
            if (d0 + v * kTeam < hd) acc[v] += w * row[d0 + v * kTeam];
          }
        }
        V4_UNROLL_ALL
        for (int v = 0; v < kAttendValues; ++v) {
          if (d0 + v * kTeam < hd) values[d0 + v * kTeam] = acc[v];
        }
      }
    });
    float* out = o + th * hd;
    team.threads([&](int l) {
      for (int64_t d = l; d < hd; d += kTeam) {
        if (d < rotated_from) {
          out[d] = values[d] / *den;
          continue;
        }
        const int64_t k = d - rotated_from;
        if (k % 2 != 0) continue;
        float pair[2] = {values[d] / *den, values[d + 1] / *den};
        kernels::rope_rotate_pair(pair, rot.freqs + k / 2, 0, rot.positions[t], true);
        out[d] = pair[0];
        out[d + 1] = pair[1];
      }
    });
  });
}

// Every token's sparse attention (spec §3.4.4), in groups of tokens whose scratch fits the
// options' bound (the rows a token reads, its decoded compressed rows, its heads' scores).
template <class E>
void sparse_attention(E& e, DeviceScratch<E>& s, const KvPageFormat& f, const KvLayerAddress& l,
                      const KvStep& step, uint32_t window, const float* q, int64_t n_head,
                      const float* sinks, const uint32_t* chosen, const uint32_t* chosen_count,
                      uint32_t top_k, float* o, const OutputRope* undo_rope) {
  const int64_t n = step.n_tokens, hd = f.shape.head_dim;
  if (n == 0) return;
  const int64_t most = most_compressed_rows(l, step, top_k);
  const int64_t slice = window + most;
  const bool raw_f32 = f.storage == KvStorage::kF32;
  const size_t per_token = static_cast<size_t>(slice) * sizeof(const float*) + sizeof(uint32_t) +
                           (raw_f32 ? 0 : static_cast<size_t>(most * hd) * sizeof(float)) +
                           static_cast<size_t>(n_head * slice) * sizeof(float);
  const int64_t group = attention_group(s, per_token, n);
  AttentionScratch a;
  a.rows =
      s.template get<const float*>(ScratchSlot::kAttentionAux, static_cast<size_t>(group * slice));
  a.total = s.template get<uint32_t>(ScratchSlot::kElementwiseAux, static_cast<size_t>(group));
  a.decoded = raw_f32 ? nullptr
                      : s.template get<float>(ScratchSlot::kAttentionAux2,
                                              static_cast<size_t>(group * most * hd) + 1);
  a.scores = s.template get<float>(ScratchSlot::kAttentionScores,
                                   static_cast<size_t>(group * n_head * slice));
  for (int64_t t0 = 0; t0 < n; t0 += group) {
    const KvStep part = step_tokens(step, t0, std::min(group, n - t0));
    OutputRope part_rope;
    if (undo_rope) {
      part_rope = *undo_rope;
      part_rope.positions += t0;
    }
    // Only ratio-4 layers have the indexer's choice.
    attention_scores(e, f, l, part, window, q + t0 * n_head * hd, n_head,
                     chosen ? chosen + t0 * top_k : nullptr,
                     chosen_count ? chosen_count + t0 : nullptr, top_k, a);
    attention_weights_output(e, part.n_tokens, n_head, hd, slice, sinks,
                             undo_rope ? &part_rope : nullptr, a, o + t0 * n_head * hd);
  }
}

}  // namespace v4::device
