// The device ops' KV update and lightning indexer (spec §3.4; sparse attention, which reads
// what they leave, is device_ops_sparse_attention.h). Every per-element step is the CPU
// backend's own arithmetic in the same order (kv_append.h, the row codecs, the score loops of
// cpu_backend_attention.cpp), spread over indices that are independent: so a token's indexer
// scores and its top-k choice are the CPU's bit for bit.
#pragma once

#include <math.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/float_dot_lanes.h"
#include "kernels/cpu/rope.h"
#include "model/backend/device/device_ops.h"
#include "model/backend/device/device_ops_kv_simulation.h"
#include "model/backend/kv_append.h"

namespace v4::device {

// A float's order as an unsigned key (larger float, larger key); −0 is +0, as the CPU's
// comparison treats them.
V4_HD inline uint32_t score_order_key(float x) {
  if (x == 0.0f) x = 0.0f;
  uint32_t u;
  memcpy(&u, &x, sizeof(u));
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Indexer keys decoded per (token, key) in thread-local memory (V4-Flash: 128 values).
inline constexpr uint32_t kMaxIndexerDim = 256;
// Heads whose indexer dots a thread sums together (V4-Flash: 64 heads).
inline constexpr int kIndexerHeadsAtOnce = 4;

V4_HD inline uint32_t visible_compressed_rows(const KvLayerAddress& l, const KvStep& step,
                                              const uint32_t* chosen_count, int64_t t) {
  if (l.ratio == 0) return 0;
  if (l.ratio == 4) return chosen_count[t];
  return static_cast<uint32_t>((step.positions[t] + 1) / l.ratio);
}

// Rows a finishing thread keeps in local memory (V4: 512 main, 128 indexer values).
inline constexpr uint32_t kMaxKvFinishRow = 1024;

// Threads of the team that finishes a completed block's row.
inline constexpr int kKvFinishTeam = 256;

// kv_finish_row (model/backend/kv_append.h) over a team, into `row` (shared memory) from
// `pooled`: the same steps on every value in the same order — the sum of squares sequential in
// double on one thread, as the CPU sums it; the scaling a value per thread, RoPE a pair per
// thread, the indexer's Hadamard rotation a butterfly per thread (hadamard_team), the FP8 / FP4
// round trips a block per thread (each block's arithmetic is its own).
template <class Team>
V4_HD void kv_finish_row_team(const Team& team, const KvCompressor& cw, int64_t dim,
                              int64_t rope_dim, uint64_t first_pos, bool indexer,
                              const float* pooled, float* row, float* scale) {
  team.threads([&](int l) {
    for (int64_t i = l; i < dim; i += team.size()) row[i] = pooled[i];
  });
  team.threads([&](int l) {
    if (l != 0) return;
    double ss = 0.0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(row[i]) * row[i];
    *scale = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(dim) + cw.rms_eps));
  });
  team.threads([&](int l) {
    const float r = *scale;
    for (int64_t i = l; i < dim; i += team.size()) row[i] = row[i] * r * cw.norm[i];
  });
  team.threads([&](int l) {
    for (int64_t k = l; k < rope_dim / 2; k += team.size()) {
      kernels::rope_rotate_pair(row + dim - rope_dim, cw.rope_freqs, k, first_pos, false);
    }
  });
  if (indexer) hadamard_team(team, row, dim);
  const int64_t n = indexer ? dim : dim - rope_dim, block = indexer ? 32 : kKvFp8Block;
  team.threads([&](int l) {
    for (int64_t b0 = l * block; b0 < n; b0 += team.size() * block) {
      const int64_t len = n - b0 < block ? n - b0 : block;
      if (indexer) {
        kernels::fp4_round_trip(row + b0, len, block);
      } else {
        kernels::fp8_round_trip(row + b0, len, block);
      }
    }
  });
}

// Two launches, no serial chain over a row's values:
// 1. a thread per (sequence, column) copies the column's raw values into the window ring and
//    feeds the column of each compressor (compressor_push_column), the sequence's tokens in
//    order (the compressors carry state from token to token, spec §3.4.3); a completed block's
//    pooled column lands in the completing token's scratch row;
// 2. a team per token that completed a block finishes its row in shared memory (RMSNorm, RoPE,
//    FP8 or QAT: kv_finish_row_team) and encodes it into the page its block table names.
// Every value goes through the CPU's arithmetic in the CPU's order (kv_append_sequence).
template <class E>
void kv_append(E& e, DeviceScratch<E>& s, const KvPageFormat& f, const KvLayerAddress& l,
               const KvStep& step, const float* kv_rows, const KvCompressor* main,
               const KvCompressor* indexer) {
  if (step.n_sequences == 0 || step.n_tokens == 0) return;
  const uint32_t hd = f.shape.head_dim, idim = f.shape.indexer_dim;
  if (hd > kMaxKvFinishRow || idim > kMaxKvFinishRow) {
    std::fprintf(stderr, "kv_append: rows of %u/%u values exceed the device limit %u\n", hd, idim,
                 kMaxKvFinishRow);
    std::abort();
  }
  const int64_t n_tokens = step.n_tokens;
  float* pooled_main = s.template get<float>(ScratchSlot::kAttentionAux,
                                             static_cast<size_t>(n_tokens) * (hd + idim));
  float* pooled_index = pooled_main + n_tokens * hd;
  const bool has_main = main != nullptr, has_indexer = indexer != nullptr;
  const KvCompressor m = has_main ? *main : KvCompressor{};
  const KvCompressor x = has_indexer ? *indexer : KvCompressor{};
  const KvPageFormat fmt = f;
  const KvLayerAddress layer = l;
  const KvStep st = step;
  const uint32_t main_cols = has_main ? kernels::compressor_columns(l.ratio, l.carry_width) : 0;
  const uint32_t index_cols =
      has_indexer ? kernels::compressor_columns(4, l.indexer_carry_width) : 0;
  const int64_t cols = std::max({hd, main_cols, index_cols});
  e.for_each(step.n_sequences * cols, [=] V4_HD(int64_t i) {
    const int64_t sq = i / cols;
    const uint32_t c = static_cast<uint32_t>(i % cols);
    const KvSequenceView& seq = st.sequences[sq];
    for (int64_t t = st.sequence_begin[sq]; t < st.sequence_begin[sq + 1]; ++t) {
      const uint64_t pos = st.positions[t];
      if (c < hd) kv_raw_row(seq, layer.raw_slot, hd, pos)[c] = kv_rows[t * hd + c];
      if (c < main_cols) {
        kernels::compressor_push_column(
            kv_carry_of(seq, layer.carry_offset, layer.carry_rows, layer.carry_width), layer.ratio,
            m.ape, m.a + t * m.width, m.g + t * m.width, pos, c, pooled_main + t * hd + c);
      }
      if (c < index_cols) {
        kernels::compressor_push_column(
            kv_carry_of(seq, layer.indexer_carry_offset, 8, layer.indexer_carry_width), 4, x.ape,
            x.a + t * x.width, x.g + t * x.width, pos, c, pooled_index + t * idim + c);
      }
    }
  });
  if (!has_main && !has_indexer) return;
  const int64_t rope_dim = f.shape.rope_dim;
  const uint32_t widest = hd > idim ? hd : idim;
  e.for_each_team(n_tokens, kKvFinishTeam, (widest + 1) * sizeof(float),
                  [=] V4_HD(int64_t t, const typename E::Team& team) {
                    const uint64_t pos = st.positions[t];
                    const bool main_done = has_main && (pos + 1) % layer.ratio == 0;
                    const bool index_done = has_indexer && (pos + 1) % 4 == 0;
                    if (!main_done && !index_done) return;  // no block completed
                    const KvSequenceView& seq = st.sequences[st.sequence_of[t]];
                    const uint64_t first_pos = pos + 1 - layer.ratio;
                    float* row = team.template shared<float>();
                    float* scale = row + widest;
                    if (main_done) {
                      kv_finish_row_team(team, m, hd, rope_dim, first_pos, false,
                                         pooled_main + t * hd, row, scale);
                      team.threads([&](int l) {
                        if (l == 0) {
                          encode_main_row(fmt.storage, fmt.shape, row,
                                          kv_main_row(fmt, layer, seq, pos / layer.ratio));
                        }
                      });
                    }
                    if (index_done) {
                      kv_finish_row_team(team, x, idim, rope_dim, first_pos, true,
                                         pooled_index + t * idim, row, scale);
                      team.threads([&](int l) {
                        if (l == 0) {
                          encode_indexer_row(fmt.storage, fmt.shape, row,
                                             kv_indexer_row(fmt, layer, seq, pos / 4));
                        }
                      });
                    }
                  });
}

// For every token that sees more than top_k indexer rows: its scores S_i = Σ_h w_h·max(0,
// q_h·K_i) in the CPU's order (bit-identical), turned in place into order keys (larger score,
// larger key; −0 equal to +0, as the CPU's comparison has it).
template <class E>
void indexer_order_keys(E& e, const KvPageFormat& fmt, const KvLayerAddress& layer,
                        const KvStep& st, const float* q, const float* head_weights,
                        float weight_scale, int64_t heads, uint32_t top_k, int64_t keys,
                        float* scores) {
  const int64_t n = st.n_tokens, dim = fmt.shape.indexer_dim;
  uint32_t* order = reinterpret_cast<uint32_t*>(scores);
  e.for_each(n * keys, [=] V4_HD(int64_t idx) {
    const int64_t t = idx / keys, i = idx % keys;
    const uint64_t visible = (st.positions[t] + 1) / 4;
    if (visible <= top_k || static_cast<uint64_t>(i) >= visible) return;
    const KvSequenceView& seq = st.sequences[st.sequence_of[t]];
    const uint8_t* bytes = kv_indexer_row(fmt, layer, seq, static_cast<uint64_t>(i));
    float decoded[kMaxIndexerDim];
    const float* k = reinterpret_cast<const float*>(bytes);
    if (fmt.storage != KvStorage::kF32) {
      decode_indexer_row(fmt.storage, fmt.shape, bytes, decoded);
      k = decoded;
    }
    const float* qt = q + t * heads * dim;
    const float* wt = head_weights + t * heads;
    // kIndexerHeadsAtOnce heads' dots side by side: independent chains a GPU thread overlaps,
    // each still summed over d in order, and added to the score in head order.
    float score = 0.0f;
    for (int64_t h0 = 0; h0 < heads; h0 += kIndexerHeadsAtOnce) {
      float dot[kIndexerHeadsAtOnce] = {};
      for (int64_t d = 0; d < dim; ++d) {
        V4_UNROLL_ALL
        for (int u = 0; u < kIndexerHeadsAtOnce; ++u) {
          if (h0 + u < heads) dot[u] += qt[(h0 + u) * dim + d] * k[d];
        }
      }
      V4_UNROLL_ALL
      for (int u = 0; u < kIndexerHeadsAtOnce; ++u) {
        if (h0 + u < heads) score += wt[h0 + u] * weight_scale * fmaxf(0.0f, dot[u]);
      }
    }
    scores[idx] = score;
  });
  e.for_each(n * keys, [=] V4_HD(int64_t idx) {
    const int64_t t = idx / keys, i = idx % keys;
    const uint64_t visible = (st.positions[t] + 1) / 4;
    if (visible <= top_k || static_cast<uint64_t>(i) >= visible) return;
    order[idx] = score_order_key(scores[idx]);
  });
}

// Threads of a token's top-k selection team.
inline constexpr int kSelectTeam = 512;

// The sum of part[0..size) into part[0] (integer counts: exact in any order), in two phases:
// 32 threads each sum a stride, then one sums those.
template <class Team>
V4_HD void team_count_sum(const Team& team, uint32_t* part) {
  team.threads([&](int l) {
    if (l >= 32) return;
    uint32_t sum = 0;
    for (int j = l; j < team.size(); j += 32) sum += part[j];
    part[l] = sum;
  });
  team.threads([&](int l) {
    if (l != 0) return;
    uint32_t sum = 0;
    for (int j = 0; j < 32 && j < team.size(); ++j) sum += part[j];
    part[0] = sum;
  });
}

// A team per token chooses its top_k rows, ascending — the CPU's partial sort's choice (ties:
// the lower index): the top_k-th largest order key by an exact radix select, a bit at a time
// from the top, each bit's count summed over the team; then every thread takes a contiguous
// run of keys and writes the keys above that threshold and the first `top_k − above` equal to
// it, at places from the runs before it (counts only, so the choice never depends on the team).
// A token that sees at most top_k rows takes them all.
template <class E>
void indexer_select(E& e, const KvStep& st, uint32_t top_k, int64_t keys, const uint32_t* order,
                    uint32_t* chosen, uint32_t* chosen_count, int team_size = kSelectTeam) {
  const int64_t n = st.n_tokens;
  const size_t shared = (2 * static_cast<size_t>(team_size) + 2) * sizeof(uint32_t);
  e.for_each_team(n, team_size, shared, [=] V4_HD(int64_t t, const typename E::Team& team) {
    uint32_t* part = team.template shared<uint32_t>();  // [size]: counts, then above-run starts
    uint32_t* equal = part + team.size();               // [size]: equal-run starts
    uint32_t* threshold = equal + team.size();          // [0]: the key, [1]: keys above it
    const uint64_t visible = (st.positions[t] + 1) / 4;
    uint32_t* out = chosen + t * top_k;
    if (visible <= top_k) {
      team.threads([&](int l) {
        for (uint64_t i = static_cast<uint64_t>(l); i < visible; i += team.size())
          out[i] = static_cast<uint32_t>(i);
        if (l == 0) chosen_count[t] = static_cast<uint32_t>(visible);
      });
      return;
    }
    const uint32_t* key = order + t * keys;
    team.threads([&](int l) {
      if (l == 0) threshold[0] = 0;
    });
    for (int bit = 31; bit >= 0; --bit) {
      team.threads([&](int l) {
        const uint32_t candidate = threshold[0] | (1u << bit);
        uint32_t count = 0;
        for (uint64_t i = static_cast<uint64_t>(l); i < visible; i += team.size())
          count += key[i] >= candidate ? 1u : 0u;
        part[l] = count;
      });
      team_count_sum(team, part);
      team.threads([&](int l) {
        if (l == 0 && part[0] >= top_k) threshold[0] |= 1u << bit;
      });
    }
    // Runs of ceil(visible / size) keys: each thread's counts above and equal, then the starts.
    const uint64_t run = (visible + static_cast<uint64_t>(team.size()) - 1) / team.size();
    team.threads([&](int l) {
      uint32_t above = 0, same = 0;
      const uint64_t end = (static_cast<uint64_t>(l) + 1) * run < visible
                               ? (static_cast<uint64_t>(l) + 1) * run
                               : visible;
      for (uint64_t i = static_cast<uint64_t>(l) * run; i < end; ++i) {
        above += key[i] > threshold[0] ? 1u : 0u;
        same += key[i] == threshold[0] ? 1u : 0u;
      }
      part[l] = above;
      equal[l] = same;
    });
    team.threads([&](int l) {
      if (l != 0) return;
      uint32_t above = 0, same = 0;
      for (int j = 0; j < team.size(); ++j) {
        const uint32_t a = part[j], q = equal[j];
        part[j] = above;
        equal[j] = same;
        above += a;
        same += q;
      }
      threshold[1] = above;
    });
    team.threads([&](int l) {
      const uint32_t ties = top_k - threshold[1];
      uint32_t seen_equal = equal[l];
      uint32_t at = part[l] + (seen_equal < ties ? seen_equal : ties);
      const uint64_t end = (static_cast<uint64_t>(l) + 1) * run < visible
                               ? (static_cast<uint64_t>(l) + 1) * run
                               : visible;
      for (uint64_t i = static_cast<uint64_t>(l) * run; i < end; ++i) {
        if (key[i] > threshold[0]) {
          out[at++] = static_cast<uint32_t>(i);
        } else if (key[i] == threshold[0] && seen_equal++ < ties) {
          out[at++] = static_cast<uint32_t>(i);
        }
      }
      if (l == 0) chosen_count[t] = top_k;
    });
  });
}

// Tokens [first, first + count) of a step, for the ops that read a token's own inputs only
// (sequence_of and positions per token; sequence_begin still describes the whole step).
inline KvStep step_tokens(const KvStep& step, int64_t first, int64_t count) {
  KvStep part = step;
  part.sequence_of += first;
  part.positions += first;
  part.n_tokens = count;
  return part;
}

// Tokens per group when each takes `per_token` bytes of scratch: as many as fit the options'
// attention scratch bound, at least one.
template <class E>
int64_t attention_group(const DeviceScratch<E>& s, size_t per_token, int64_t n) {
  const uint64_t fit = s.options().attention_scratch_bytes / std::max<size_t>(per_token, 1);
  return std::clamp<int64_t>(static_cast<int64_t>(std::min<uint64_t>(fit, INT64_MAX)), 1, n);
}

template <class E>
void indexer_topk(E& e, DeviceScratch<E>& s, const KvPageFormat& f, const KvLayerAddress& l,
                  const KvStep& step, const float* q, const float* head_weights, float weight_scale,
                  int64_t heads, uint32_t top_k, uint32_t* chosen, uint32_t* chosen_count) {
  const int64_t n = step.n_tokens, dim = f.shape.indexer_dim;
  if (n == 0) return;
  if (dim > kMaxIndexerDim) {
    std::fprintf(stderr, "indexer_topk: indexer head dim %lld above the device limit %u\n",
                 static_cast<long long>(dim), kMaxIndexerDim);
    std::abort();
  }
  const int64_t keys = static_cast<int64_t>(step.position_end / 4) + 1;
  const int64_t group = attention_group(s, static_cast<size_t>(keys) * sizeof(float), n);
  float* scores =
      s.template get<float>(ScratchSlot::kAttentionScores, static_cast<size_t>(group * keys));
  for (int64_t t0 = 0; t0 < n; t0 += group) {
    const KvStep part = step_tokens(step, t0, std::min(group, n - t0));
    // The host bound says whether any token sees more than top_k rows; if none does, every
    // token takes all it sees and the scoring launches are skipped.
    if (step.position_end / 4 > top_k) {
      indexer_order_keys(e, f, l, part, q + t0 * heads * dim, head_weights + t0 * heads,
                         weight_scale, heads, top_k, keys, scores);
    }
    indexer_select(e, part, top_k, keys, reinterpret_cast<const uint32_t*>(scores),
                   chosen + t0 * top_k, chosen_count + t0);
  }
}

}  // namespace v4::device
