#include "model/v4/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "model/v4/compressor.h"
#include "model/v4/fp8.h"
#include "model/v4/indexer.h"
#include "model/v4/rope.h"
#include "model/v4/v4_weights.h"

namespace v4 {
namespace {

// FP8 block of the KV simulation (spec §3.4.2).
constexpr int64_t kFp8Block = 64;

struct Projections {
  std::vector<float> cq;                            // [n][q_lora_rank], kept for the indexer
  std::vector<float> q;                             // [n][n_head][head_dim]
  std::vector<float> kv;                            // [n][head_dim]
  std::vector<float> comp_a, comp_g, idx_a, idx_g;  // compressor projections, [n][width]
};

Projections project(const ForwardContext& ctx, const LayerWeights& w, const AttentionRope& rope,
                    const float* h) {
  const V4Config& c = ctx.config;
  Backend& be = ctx.backend;
  const int64_t n = ctx.batch.size(), hd = c.head_dim, nh = c.n_head;
  Projections p;
  p.cq.resize(static_cast<size_t>(n * c.q_lora_rank));
  be.matmul(w.q_a.view, h, n, p.cq.data());
  be.rms_norm(p.cq.data(), w.q_a_norm.data(), c.q_lora_rank, n, c.rms_eps, p.cq.data());
  p.q.resize(static_cast<size_t>(n * nh * hd));
  be.matmul(w.q_b.view, p.cq.data(), n, p.q.data());
  // Per-head RMS norm without weight (spec §3.9).
  be.rms_norm(p.q.data(), nullptr, hd, n * nh, c.rms_eps, p.q.data());
  p.kv.resize(static_cast<size_t>(n * hd));
  be.matmul(w.kv.view, h, n, p.kv.data());
  be.rms_norm(p.kv.data(), w.kv_a_norm.data(), hd, n, c.rms_eps, p.kv.data());
  const int64_t tail = hd - c.rope_dim;
  be.parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const uint64_t pos = ctx.batch.positions[static_cast<size_t>(t)];
      for (int64_t head = 0; head < nh; ++head) {
        rope_rotate(&p.q[static_cast<size_t>((t * nh + head) * hd + tail)], rope.freqs, pos, false);
      }
      float* kv = &p.kv[static_cast<size_t>(t * hd)];
      rope_rotate(kv + tail, rope.freqs, pos, false);
      fp8_round_trip(kv, tail, kFp8Block);  // the RoPE tail stays high precision
    }
  });
  if (w.compress_ratio == 0) return p;
  const int64_t cw = w.compressor.width;
  p.comp_a.resize(static_cast<size_t>(n * cw));
  p.comp_g.resize(static_cast<size_t>(n * cw));
  be.matmul(w.compressor.kv.view, h, n, p.comp_a.data());
  be.matmul(w.compressor.gate.view, h, n, p.comp_g.data());
  if (w.compress_ratio != 4) return p;
  const int64_t iw = w.indexer.compressor.width;
  p.idx_a.resize(static_cast<size_t>(n * iw));
  p.idx_g.resize(static_cast<size_t>(n * iw));
  be.matmul(w.indexer.compressor.kv.view, h, n, p.idx_a.data());
  be.matmul(w.indexer.compressor.gate.view, h, n, p.idx_g.data());
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
    indexer_qat_transform(row, dim);
  } else {
    fp8_round_trip(row, dim - c.rope_dim, kFp8Block);
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
    std::vector<float> pooled(std::max<size_t>(hd, c.indexer_head_dim));
    for (int64_t s = s0; s < s1; ++s) {
      KvStateStore& st = *b.states[static_cast<size_t>(s)];
      for (int64_t t = b.sequence_begin[s]; t < b.sequence_begin[s + 1]; ++t) {
        const uint64_t pos = b.positions[static_cast<size_t>(t)];
        std::copy_n(&p.kv[static_cast<size_t>(t * hd)], hd, st.raw_row(layer, pos));
        if (w.compress_ratio == 0) continue;
        const uint32_t r = w.compress_ratio;
        const size_t cw = w.compressor.width;
        if (compressor_push(w.compressor, st.compressor_carry(layer, false), &p.comp_a[t * cw],
                            &p.comp_g[t * cw], pos, pooled.data())) {
          finish_compressed_row(c, w.compressor, rope, pos + 1 - r, false, pooled.data());
          std::copy_n(pooled.data(), hd, st.append_compressed_row(layer));
        }
        if (r != 4) continue;
        const size_t iw = w.indexer.compressor.width;
        if (compressor_push(w.indexer.compressor, st.compressor_carry(layer, true),
                            &p.idx_a[t * iw], &p.idx_g[t * iw], pos, pooled.data())) {
          finish_compressed_row(c, w.indexer.compressor, rope, pos + 1 - r, true, pooled.data());
          std::copy_n(pooled.data(), c.indexer_head_dim, st.append_indexer_key(layer));
        }
      }
    }
  });
}

// One head of one token: softmax with sink over the raw window rows and the chosen compressed
// rows (V = K), written to o (head_dim floats).
void attend_head(const V4Config& c, KvStateStore& st, uint32_t layer, uint64_t pos,
                 const std::vector<uint32_t>& compressed, const float* q, float sink, float* o,
                 std::vector<float>& scores, std::vector<const float*>& rows) {
  const int64_t hd = c.head_dim;
  rows.clear();
  const uint64_t first = pos + 1 > c.sliding_window ? pos + 1 - c.sliding_window : 0;
  for (uint64_t p = first; p <= pos; ++p) rows.push_back(st.raw_row(layer, p));
  for (uint32_t i : compressed) rows.push_back(st.compressed_row(layer, i));
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  scores.resize(rows.size());
  float mx = sink;  // the sink logit is not scaled
  for (size_t j = 0; j < rows.size(); ++j) {
    float dot = 0.0f;
    for (int64_t d = 0; d < hd; ++d) dot += q[d] * rows[j][d];
    scores[j] = dot * scale;
    mx = std::max(mx, scores[j]);
  }
  float den = std::exp(sink - mx);
  std::fill_n(o, hd, 0.0f);
  for (size_t j = 0; j < rows.size(); ++j) {
    const float e = std::exp(scores[j] - mx);
    den += e;
    for (int64_t d = 0; d < hd; ++d) o[d] += e * rows[j][d];
  }
  for (int64_t d = 0; d < hd; ++d) o[d] /= den;
}

}  // namespace

void attention_forward(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer,
                       const AttentionRope& rope, const float* h, float* out) {
  const V4Config& c = ctx.config;
  const ForwardBatch& b = ctx.batch;
  const int64_t n = b.size(), hd = c.head_dim, nh = c.n_head;
  Projections p = project(ctx, w, rope, h);
  stream_into_state(ctx, w, layer, rope, p);

  // Which compressed rows each token sees: row i is visible iff i < floor((t+1)/r).
  std::vector<std::vector<uint32_t>> chosen(static_cast<size_t>(n));
  if (w.compress_ratio != 0) {
    IndexerQueries iq;
    if (w.compress_ratio == 4) iq = indexer_queries(ctx, w, p.cq.data(), h, rope.freqs);
    ctx.backend.parallel_for(n, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const KvStateStore& st = *b.states[b.sequence_of[static_cast<size_t>(t)]];
        const uint64_t visible = (b.positions[static_cast<size_t>(t)] + 1) / w.compress_ratio;
        std::vector<uint32_t>& rows = chosen[static_cast<size_t>(t)];
        if (w.compress_ratio == 4) {
          rows = indexer_select(ctx, iq, t, st, layer, visible);
        } else {  // ratio 128: every completed block is visible
          for (uint32_t i = 0; i < visible; ++i) rows.push_back(i);
        }
      }
    });
    if (w.compress_ratio == 4) {
      for (int64_t t = 0; t < n; ++t) {
        const uint64_t visible = (b.positions[static_cast<size_t>(t)] + 1) / 4;
        if (visible > c.indexer_top_k) {
          ++ctx.stats.indexer_selections;
          ctx.stats.indexer_rows_dropped += visible - c.indexer_top_k;
        }
      }
    }
  }

  std::vector<float> o(static_cast<size_t>(n * nh * hd));
  ctx.backend.parallel_for(n * nh, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    std::vector<const float*> rows;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i / nh, head = i % nh;
      KvStateStore& st = *b.states[b.sequence_of[static_cast<size_t>(t)]];
      const uint64_t pos = b.positions[static_cast<size_t>(t)];
      float* oh = &o[static_cast<size_t>(i * hd)];
      attend_head(c, st, layer, pos, chosen[static_cast<size_t>(t)],
                  &p.q[static_cast<size_t>(i * hd)], w.sinks[static_cast<size_t>(head)], oh, scores,
                  rows);
      rope_rotate(oh + hd - c.rope_dim, rope.freqs, pos, true);  // undo the keys' rotation
    }
  });

  // Grouped low-rank output: group g maps its heads' concatenation through rows g·o_lora.. of
  // attn_output_a, then attn_output_b mixes all groups (spec §3.4).
  const int64_t groups = c.o_groups, rank = c.o_lora_rank, group_in = nh / groups * hd;
  std::vector<float> z(static_cast<size_t>(n * groups * rank));
  for (int64_t g = 0; g < groups; ++g) {
    ctx.backend.matmul(w.output_a.row_range(g * rank, rank), o.data() + g * group_in, nh * hd, n,
                       z.data() + g * rank, groups * rank);
  }
  ctx.backend.matmul(w.output_b.view, z.data(), n, out);
}

}  // namespace v4
