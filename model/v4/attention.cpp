#include "model/v4/attention.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <span>

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
  float* idx_w = nullptr;  // [n][indexer_n_head]: the indexer's head weights, unscaled
  float* idx_q = nullptr;  // [n][indexer_n_head][indexer_head_dim]: its queries, before RoPE
};

// A stable insertion sort of products by weight type (Backend::matmul_shared runs the products of
// one type as one): std::stable_sort may take heap memory, and a decode step allocates none.
void sort_by_type(std::span<MatmulTarget> targets) {
  const auto by_type = [](const MatmulTarget& a, const MatmulTarget& b) {
    return a.w.type < b.w.type;
  };
  for (auto it = targets.begin() + 1; it < targets.end(); ++it) {
    std::rotate(std::upper_bound(targets.begin(), it, *it, by_type), it, it + 1);
  }
}

// At most q_a, kv, the two compressors' kv and gate, and the indexer's head weights.
constexpr size_t kMaxInputProjections = 7;

Projections project(const ForwardContext& ctx, const LayerWeights& w, const AttentionRope& rope,
                    const float* h) {
  const V4Config& c = ctx.config;
  Backend& be = ctx.backend;
  ForwardWorkspace& ws = ctx.ws;
  const int64_t n = ctx.size(), hd = c.head_dim, nh = c.n_head;
  Projections p;
  p.cq = ws.cq.data<float>();
  p.kv = ws.kv.data<float>();
  // Every projection of h in one call (spec §3.4), the weights of one type next to each other:
  // a device backend then reads h once per weight format and launches one product per format.
  std::array<MatmulTarget, kMaxInputProjections> of_h;
  size_t n_of_h = 0;
  of_h[n_of_h++] = {w.q_a.view, p.cq};
  of_h[n_of_h++] = {w.kv.view, p.kv};
  if (w.compress_ratio != 0) {
    p.comp_a = ws.comp_a.data<float>();
    p.comp_g = ws.comp_g.data<float>();
    of_h[n_of_h++] = {w.compressor.kv.view, p.comp_a};
    of_h[n_of_h++] = {w.compressor.gate.view, p.comp_g};
  }
  if (w.compress_ratio == 4) {
    p.idx_a = ws.idx_a.data<float>();
    p.idx_g = ws.idx_g.data<float>();
    p.idx_w = ws.idx_w.data<float>();
    of_h[n_of_h++] = {w.indexer.compressor.kv.view, p.idx_a};
    of_h[n_of_h++] = {w.indexer.compressor.gate.view, p.idx_g};
    of_h[n_of_h++] = {w.indexer.proj.view, p.idx_w};
  }
  sort_by_type(std::span(of_h.data(), n_of_h));
  be.matmul_shared(h, n, std::span(of_h.data(), n_of_h));
  // The products of cq after q_a_norm: the queries, and on ratio-4 layers the indexer's.
  p.q = ws.q.data<float>();
  std::array<MatmulTarget, 2> of_cq{MatmulTarget{w.q_b.view, p.q}};
  size_t n_of_cq = 1;
  if (w.compress_ratio == 4) {
    p.idx_q = ws.idx_q.data<float>();
    of_cq[n_of_cq++] = {w.indexer.q_b.view, p.idx_q};
  }
  sort_by_type(std::span(of_cq.data(), n_of_cq));
  be.norm_matmul_shared(p.cq, w.q_a_norm.device(), c.q_lora_rank, c.rms_eps, n,
                        std::span(of_cq.data(), n_of_cq));
  // Each query head: RMSNorm without weight (spec §3.9), then RoPE. The kv row: its RMSNorm,
  // RoPE, then the FP8 round trip of all but the RoPE tail, which stays high precision. On
  // ratio-4 layers the indexer's queries too (indexer_query_rows): all in one call.
  std::array<HeadRows, 3> heads;
  HeadTransform tq;
  tq.norm = true;
  tq.eps = c.rms_eps;
  tq.rope_dim = c.rope_dim;
  tq.positions = ctx.positions();
  tq.freqs = rope.device();
  heads[0] = {p.q, nh, hd, tq};
  HeadTransform tkv = tq;
  tkv.norm_weight = w.kv_a_norm.device();
  tkv.fp8_block = kFp8Block;
  heads[1] = {p.kv, 1, hd, tkv};
  size_t n_heads = 2;
  if (w.compress_ratio == 4) heads[n_heads++] = indexer_query_rows(ctx, p.idx_q, rope.device());
  be.transform_heads(n, std::span(heads.data(), n_heads));
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
  const int64_t n = ctx.size(), nh = c.n_head;
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
    const IndexerQueries iq = indexer_queries(ctx, p.idx_q, p.idx_w);
    be.indexer_topk(format, address, kv, iq.q, iq.weights, iq.weight_scale, c.indexer_n_head, top_k,
                    chosen, chosen_count);
  }
  float* o = ws.o.data<float>();
  // The keys' rotation is undone on each head's output (spec §3.4.1).
  const OutputRope undo{c.rope_dim, ctx.positions(), rope.device()};
  be.sparse_attention(format, address, kv, c.sliding_window, p.q, nh, w.sinks.device(), chosen,
                      chosen_count, top_k, o, &undo);

  // Grouped low-rank output: group g maps its heads' concatenation through rows g·o_lora.. of
  // attn_output_a, then attn_output_b mixes all groups (spec §3.4).
  float* z = ws.z.data<float>();
  ctx.backend.matmul_groups(w.output_a.view, c.o_groups, o, n, z);
  ctx.backend.matmul(w.output_b.view, z, n, out);
}

}  // namespace v4
