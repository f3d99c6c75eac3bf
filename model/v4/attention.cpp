#include "model/v4/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/fp4.h"
#include "kernels/cpu/fp8.h"
#include "model/v4/compressor.h"
#include "model/v4/indexer.h"
#include "model/v4/rope.h"
#include "model/v4/v4_weights.h"

namespace v4 {
namespace {

// FP8 block of the KV simulation (spec §3.4.2).
constexpr int64_t kFp8Block = 64;

// The step's projections, in workspace buffers.
struct Projections {
  float* cq = nullptr;  // [n][q_lora_rank], kept for the indexer
  float* q = nullptr;   // [n][n_head][head_dim]
  float* kv = nullptr;  // [n][head_dim]
  float *comp_a = nullptr, *comp_g = nullptr, *idx_a = nullptr, *idx_g = nullptr;  // [n][width]
};

Projections project(const ForwardContext& ctx, const LayerWeights& w, const AttentionRope& rope,
                    const float* h) {
  const V4Config& c = ctx.config;
  Backend& be = ctx.backend;
  ForwardWorkspace& ws = ctx.ws;
  const int64_t n = ctx.batch.size(), hd = c.head_dim, nh = c.n_head;
  Projections p;
  p.cq = ws.cq.data<float>();
  be.matmul(w.q_a.view, h, n, p.cq);
  be.rms_norm(p.cq, w.q_a_norm.data(), c.q_lora_rank, n, c.rms_eps, p.cq);
  p.q = ws.q.data<float>();
  be.matmul(w.q_b.view, p.cq, n, p.q);
  // Per-head RMS norm without weight (spec §3.9).
  be.rms_norm(p.q, nullptr, hd, n * nh, c.rms_eps, p.q);
  p.kv = ws.kv.data<float>();
  be.matmul(w.kv.view, h, n, p.kv);
  be.rms_norm(p.kv, w.kv_a_norm.data(), hd, n, c.rms_eps, p.kv);
  const int64_t tail = hd - c.rope_dim;
  const uint64_t* positions = ws.positions.data<uint64_t>();
  be.rope(p.q, n, nh, hd, tail, c.rope_dim, positions, rope.freqs.data(), false);
  be.rope(p.kv, n, 1, hd, tail, c.rope_dim, positions, rope.freqs.data(), false);
  be.fp8_round_trip(p.kv, n, hd, tail, kFp8Block);  // the RoPE tail stays high precision
  if (w.compress_ratio == 0) return p;
  p.comp_a = ws.comp_a.data<float>();
  p.comp_g = ws.comp_g.data<float>();
  be.matmul(w.compressor.kv.view, h, n, p.comp_a);
  be.matmul(w.compressor.gate.view, h, n, p.comp_g);
  if (w.compress_ratio != 4) return p;
  p.idx_a = ws.idx_a.data<float>();
  p.idx_g = ws.idx_g.data<float>();
  be.matmul(w.indexer.compressor.kv.view, h, n, p.idx_a);
  be.matmul(w.indexer.compressor.gate.view, h, n, p.idx_g);
  return p;
}

// A pooled compressed row becomes a cached row: RMSNorm, RoPE at the block's first position
// (spec §3.9), then FP8 for main rows or the QAT transform for indexer keys.
void finish_compressed_row(const V4Config& c, const CompressorWeights& cw,
                           const AttentionRope& rope, uint64_t first_pos, bool indexer,
                           float* row) {
  const int64_t dim = static_cast<int64_t>(cw.norm.size());
  double ss = 0.0;
  for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(row[i]) * row[i];
  const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + c.rms_eps));
  for (int64_t i = 0; i < dim; ++i) row[i] = row[i] * r * cw.norm[static_cast<size_t>(i)];
  rope_rotate(row + dim - c.rope_dim, rope.freqs, first_pos, false);
  if (indexer) {
    kernels::indexer_qat_transform(row, dim);
  } else {
    kernels::fp8_round_trip(row, dim - c.rope_dim, kFp8Block);
  }
}

// Writes raw rows and runs the compressors token by token in position order, per sequence
// (spec §3.8: state after a chunk equals state after feeding its tokens one at a time).
void stream_into_state(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer,
                       const AttentionRope& rope, const Projections& p) {
  const V4Config& c = ctx.config;
  const ForwardBatch& b = ctx.batch;
  const int64_t hd = c.head_dim;
  ctx.backend.parallel_for(static_cast<int64_t>(b.states.size()), [&](int64_t s0, int64_t s1) {
    thread_local std::vector<float> pooled_rows;  // grows once per thread
    float* pooled = fit(pooled_rows, std::max<size_t>(hd, c.indexer_head_dim));
    for (int64_t s = s0; s < s1; ++s) {
      KvStateStore& st = *b.states[static_cast<size_t>(s)];
      for (int64_t t = b.sequence_begin[s]; t < b.sequence_begin[s + 1]; ++t) {
        const uint64_t pos = b.positions[static_cast<size_t>(t)];
        std::copy_n(p.kv + t * hd, hd, st.raw_row(layer, pos));
        if (w.compress_ratio == 0) continue;
        const uint32_t r = w.compress_ratio;
        const size_t cw = w.compressor.width;
        if (compressor_push(w.compressor, st.compressor_carry(layer, false), p.comp_a + t * cw,
                            p.comp_g + t * cw, pos, pooled)) {
          finish_compressed_row(c, w.compressor, rope, pos + 1 - r, false, pooled);
          std::copy_n(pooled, hd, st.append_compressed_row(layer));
        }
        if (r != 4) continue;
        const size_t iw = w.indexer.compressor.width;
        if (compressor_push(w.indexer.compressor, st.compressor_carry(layer, true),
                            p.idx_a + t * iw, p.idx_g + t * iw, pos, pooled)) {
          finish_compressed_row(c, w.indexer.compressor, rope, pos + 1 - r, true, pooled);
          std::copy_n(pooled, c.indexer_head_dim, st.append_indexer_key(layer));
        }
      }
    }
  });
}

// One head of one token: softmax with sink over the raw window rows and `n_compressed` compressed
// rows (indices `compressed`, or 0.. when null; V = K), written to o (head_dim floats).
// `rows` and `scores` are scratch of sliding_window + n_compressed values.
void attend_head(const V4Config& c, KvStateStore& st, uint32_t layer, uint64_t pos,
                 const uint32_t* compressed, uint32_t n_compressed, const float* q, float sink,
                 float* o, const float** rows, float* scores) {
  const int64_t hd = c.head_dim;
  const uint64_t first = pos + 1 > c.sliding_window ? pos + 1 - c.sliding_window : 0;
  const size_t n_rows = static_cast<size_t>(pos + 1 - first) + n_compressed;
  size_t j = 0;
  for (uint64_t p = first; p <= pos; ++p) rows[j++] = st.raw_row(layer, p);
  for (uint32_t i = 0; i < n_compressed; ++i) {
    rows[j++] = st.compressed_row(layer, compressed ? compressed[i] : i);
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  float mx = sink;  // the sink logit is not scaled
  for (j = 0; j < n_rows; ++j) {
    float dot = 0.0f;
    for (int64_t d = 0; d < hd; ++d) dot += q[d] * rows[j][d];
    scores[j] = dot * scale;
    mx = std::max(mx, scores[j]);
  }
  float den = std::exp(sink - mx);
  std::fill_n(o, hd, 0.0f);
  for (j = 0; j < n_rows; ++j) {
    const float e = std::exp(scores[j] - mx);
    den += e;
    for (int64_t d = 0; d < hd; ++d) o[d] += e * rows[j][d];
  }
  for (int64_t d = 0; d < hd; ++d) o[d] /= den;
}

uint64_t max_position(const ForwardBatch& b) {
  return b.positions.empty() ? 0 : *std::max_element(b.positions.begin(), b.positions.end());
}

}  // namespace

void attention_forward(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer,
                       const AttentionRope& rope, const float* h, float* out) {
  const V4Config& c = ctx.config;
  const ForwardBatch& b = ctx.batch;
  ForwardWorkspace& ws = ctx.ws;
  const int64_t n = b.size(), hd = c.head_dim, nh = c.n_head;
  const Projections p = project(ctx, w, rope, h);
  stream_into_state(ctx, w, layer, rope, p);

  // Which compressed rows each token sees: row i is visible iff i < floor((t+1)/r). Ratio-4
  // layers take the indexer's choice ([n][top_k] in ws.chosen); ratio 128 sees every one.
  const uint32_t top_k = c.indexer_top_k;
  uint32_t* chosen = ws.chosen.data<uint32_t>();
  uint32_t* chosen_count = ws.chosen_count.data<uint32_t>();
  // Parallel loops run one task per thread, each with its own slice of workspace scratch.
  const int64_t threads = std::max<int64_t>(1, ctx.backend.threads());
  if (w.compress_ratio == 4) {
    const IndexerQueries iq = indexer_queries(ctx, w, p.cq, h, rope.freqs);
    const size_t slice = (max_position(b) + 1) / 4 + 1;
    const int64_t tasks = std::min(n, threads);
    uint32_t* ids = fit(ws.task_ids, static_cast<size_t>(tasks) * slice);
    float* scores = fit(ws.task_index_scores, static_cast<size_t>(tasks) * slice);
    ctx.backend.parallel_for(tasks, [&](int64_t task0, int64_t task1) {
      for (int64_t task = task0; task < task1; ++task) {
        for (int64_t t = n * task / tasks; t < n * (task + 1) / tasks; ++t) {
          const KvStateStore& st = *b.states[b.sequence_of[static_cast<size_t>(t)]];
          const uint64_t visible = (b.positions[static_cast<size_t>(t)] + 1) / 4;
          chosen_count[t] = indexer_select(ctx, iq, t, st, layer, visible, ids + task * slice,
                                           scores + task * slice, chosen + t * top_k);
        }
      }
    });
    for (int64_t t = 0; t < n; ++t) {
      const uint64_t visible = (b.positions[static_cast<size_t>(t)] + 1) / 4;
      if (visible > top_k) {
        ++ctx.stats.indexer_selections;
        ctx.stats.indexer_rows_dropped += visible - top_k;
      }
    }
  } else {
    for (int64_t t = 0; t < n; ++t) {
      chosen_count[t] =
          w.compress_ratio == 0
              ? 0
              : static_cast<uint32_t>((b.positions[static_cast<size_t>(t)] + 1) / w.compress_ratio);
    }
  }

  float* o = ws.o.data<float>();
  const size_t slice =
      c.sliding_window + (n > 0 ? *std::max_element(chosen_count, chosen_count + n) : 0);
  const int64_t items = n * nh, tasks = std::min(items, threads);
  const float** rows = fit(ws.task_rows, static_cast<size_t>(tasks) * slice);
  float* scores = fit(ws.task_scores, static_cast<size_t>(tasks) * slice);
  ctx.backend.parallel_for(tasks, [&](int64_t task0, int64_t task1) {
    for (int64_t task = task0; task < task1; ++task) {
      for (int64_t i = items * task / tasks; i < items * (task + 1) / tasks; ++i) {
        const int64_t t = i / nh, head = i % nh;
        KvStateStore& st = *b.states[b.sequence_of[static_cast<size_t>(t)]];
        const uint64_t pos = b.positions[static_cast<size_t>(t)];
        float* oh = o + i * hd;
        attend_head(c, st, layer, pos, w.compress_ratio == 4 ? chosen + t * top_k : nullptr,
                    chosen_count[t], p.q + i * hd, w.sinks[static_cast<size_t>(head)], oh,
                    rows + task * slice, scores + task * slice);
      }
    }
  });
  // Undo the keys' rotation on each head's output.
  ctx.backend.rope(o, n, nh, hd, hd - c.rope_dim, c.rope_dim, ws.positions.data<uint64_t>(),
                   rope.freqs.data(), true);

  // Grouped low-rank output: group g maps its heads' concatenation through rows g·o_lora.. of
  // attn_output_a, then attn_output_b mixes all groups (spec §3.4).
  const int64_t groups = c.o_groups, rank = c.o_lora_rank, group_in = nh / groups * hd;
  float* z = ws.z.data<float>();
  for (int64_t g = 0; g < groups; ++g) {
    ctx.backend.matmul(w.output_a.row_range(g * rank, rank), o + g * group_in, nh * hd, n,
                       z + g * rank, groups * rank);
  }
  ctx.backend.matmul(w.output_b.view, z, n, out);
}

}  // namespace v4
