#include "model/v4/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

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
  const int64_t n = ctx.size(), hd = c.head_dim, nh = c.n_head;
  Projections p;
  p.cq = ws.cq.data<float>();
  be.matmul(w.q_a.view, h, n, p.cq);
  be.rms_norm(p.cq, w.q_a_norm.device(), c.q_lora_rank, n, c.rms_eps, p.cq);
  p.q = ws.q.data<float>();
  be.matmul(w.q_b.view, p.cq, n, p.q);
  // Per-head RMS norm without weight (spec §3.9).
  be.rms_norm(p.q, nullptr, hd, n * nh, c.rms_eps, p.q);
  p.kv = ws.kv.data<float>();
  be.matmul(w.kv.view, h, n, p.kv);
  be.rms_norm(p.kv, w.kv_a_norm.device(), hd, n, c.rms_eps, p.kv);
  const int64_t tail = hd - c.rope_dim;
  const uint64_t* positions = ctx.positions();
  be.rope(p.q, n, nh, hd, tail, c.rope_dim, positions, rope.device(), false);
  be.rope(p.kv, n, 1, hd, tail, c.rope_dim, positions, rope.device(), false);
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

KvCompressor compressor_op(const V4Config& c, const CompressorWeights& w, const AttentionRope& rope,
                           const float* a, const float* g) {
  return {w.ratio, w.width, w.ape.device(), w.norm.device(), c.rms_eps, rope.device(), a, g};
}

}  // namespace

void attention_forward(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer,
                       const AttentionRope& rope, const float* h, float* out) {
  const V4Config& c = ctx.config;
  ForwardWorkspace& ws = ctx.ws;
  const int64_t n = ctx.size(), hd = c.head_dim, nh = c.n_head;
  const Projections p = project(ctx, w, rope, h);
  const KvPageFormat& format = ctx.kv_layout.format;
  const KvLayerAddress& address = ctx.kv_layout.layers[layer];
  const KvStep& kv = ctx.kv;
  Backend& be = ctx.backend;
  // The step's rows and compressor steps into the states, then the reads of this layer.
  if (w.compress_ratio == 0) {
    be.kv_append(format, address, kv, p.kv, nullptr, nullptr);
  } else {
    const KvCompressor main = compressor_op(c, w.compressor, rope, p.comp_a, p.comp_g);
    if (w.compress_ratio == 4) {
      const KvCompressor idx = compressor_op(c, w.indexer.compressor, rope, p.idx_a, p.idx_g);
      be.kv_append(format, address, kv, p.kv, &main, &idx);
    } else {
      be.kv_append(format, address, kv, p.kv, &main, nullptr);
    }
  }

  // Ratio-4 layers attend to the rows the indexer chooses ([n][top_k] in ws.chosen).
  const uint32_t top_k = c.indexer_top_k;
  uint32_t* chosen = ws.chosen.data<uint32_t>();
  uint32_t* chosen_count = ws.chosen_count.data<uint32_t>();
  if (w.compress_ratio == 4) {
    const IndexerQueries iq = indexer_queries(ctx, w, p.cq, h, rope.device());
    be.indexer_topk(format, address, kv, iq.q, iq.weights, c.indexer_n_head, top_k, chosen,
                    chosen_count);
  }
  float* o = ws.o.data<float>();
  be.sparse_attention(format, address, kv, c.sliding_window, p.q, nh, w.sinks.device(), chosen,
                      chosen_count, top_k, o);
  // Undo the keys' rotation on each head's output.
  ctx.backend.rope(o, n, nh, hd, hd - c.rope_dim, c.rope_dim, ctx.positions(), rope.device(), true);

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
