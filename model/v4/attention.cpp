#include "model/v4/attention.h"

#include <algorithm>
#include <array>
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
  float* idx_w = nullptr;  // [n][indexer_n_head]: the indexer's head weights, unscaled
};

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
  // A stable insertion sort by type: std::stable_sort may take heap memory, and a decode step
  // allocates none.
  const auto by_type = [](const MatmulTarget& a, const MatmulTarget& b) {
    return a.w.type < b.w.type;
  };
  for (auto it = of_h.begin() + 1; it < of_h.begin() + n_of_h; ++it) {
    std::rotate(std::upper_bound(of_h.begin(), it, *it, by_type), it, it + 1);
  }
  be.matmul_shared(h, n, std::span(of_h.data(), n_of_h));
  be.rms_norm(p.cq, w.q_a_norm.device(), c.q_lora_rank, n, c.rms_eps, p.cq);
  p.q = ws.q.data<float>();
  be.matmul(w.q_b.view, p.cq, n, p.q);
  // Per-head RMS norm without weight (spec §3.9).
  be.rms_norm(p.q, nullptr, hd, n * nh, c.rms_eps, p.q);
  be.rms_norm(p.kv, w.kv_a_norm.device(), hd, n, c.rms_eps, p.kv);
  const int64_t tail = hd - c.rope_dim;
  const uint64_t* positions = ctx.positions();
  be.rope(p.q, n, nh, hd, tail, c.rope_dim, positions, rope.device(), false);
  be.rope(p.kv, n, 1, hd, tail, c.rope_dim, positions, rope.device(), false);
  be.fp8_round_trip(p.kv, n, hd, tail, kFp8Block);  // the RoPE tail stays high precision
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
    const IndexerQueries iq = indexer_queries(ctx, w, p.cq, p.idx_w, rope.device());
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
  float* z = ws.z.data<float>();
  ctx.backend.matmul_groups(w.output_a.view, c.o_groups, o, n, z);
  ctx.backend.matmul(w.output_b.view, z, n, out);
}

}  // namespace v4
