#include "model/v4/step_shapes.h"

#include <algorithm>
#include <initializer_list>

#include "kernels/cpu/token_candidates.h"
#include "model/v4/forward_workspace.h"
#include "model/v4/v4_forward.h"

namespace v4 {
namespace {

void add_product(StepShapes& s, const WeightMatrix& m, int64_t inputs) {
  if (!m.present() || inputs <= 0) return;
  s.products.push_back({m.view.type, m.rows(), m.cols(), inputs});
}

// Backend::matmul_shared over these matrices (attention.cpp: the projections of h, and those of
// the normed cq): the products of one weight type may run as one, of all their rows.
void add_products_of_one_input(StepShapes& s, std::initializer_list<const WeightMatrix*> ms,
                               int64_t inputs) {
  for (const WeightMatrix* m : ms) {
    if (!m->present()) continue;
    int64_t rows = 0;
    for (const WeightMatrix* same : ms) {
      if (same->present() && same->view.type == m->view.type && same->cols() == m->cols()) {
        rows += same->rows();
      }
    }
    if (inputs > 0) s.products.push_back({m->view.type, rows, m->cols(), inputs});
  }
}

void add_expert_ffn(StepShapes& s, const WeightMatrix& gate, const WeightMatrix& up,
                    const WeightMatrix& down, int64_t rows) {
  if (!gate.present() || rows <= 0) return;
  s.expert_ffns.push_back({gate.view.type, up.view.type, down.view.type, gate.cols(), gate.rows(),
                           rows, static_cast<uint32_t>(gate.n_mats)});
}

// A hyper-connection mix (spec §3.2): RMSNorm of the n_hc streams, then fn.
void add_hc_mix(StepShapes& s, const V4Config& c, const WeightMatrix& fn, int64_t n) {
  add_product(s, fn, n);
  s.hc_mixes.push_back({int64_t{c.n_hc} * c.n_embd, fn.rows(), n});
}

// One block (spec §3.3): its two HC mixes, attention with its compressor and indexer, the MoE
// layer's router, routed and shared experts.
void add_layer(StepShapes& s, const V4Config& c, const LayerWeights& l, int64_t n, int64_t context,
               int64_t routed_rows_per_token, KvStorage storage) {
  add_hc_mix(s, c, l.hc_attn.fn, n);
  add_hc_mix(s, c, l.hc_ffn.fn, n);
  for (const WeightMatrix* m : {&l.output_b, &l.router}) add_product(s, *m, n);
  add_products_of_one_input(s, {&l.q_b, &l.indexer.q_b}, n);
  add_products_of_one_input(s,
                            {&l.q_a, &l.kv, &l.compressor.kv, &l.compressor.gate, &l.indexer.proj,
                             &l.indexer.compressor.kv, &l.indexer.compressor.gate},
                            n);
  // The grouped low-rank output (attention.cpp): each token's o_groups slices are activation
  // rows of their own, and its outputs are all the matrix's rows.
  if (l.output_a.present()) {
    s.products.push_back(
        {l.output_a.view.type, l.output_a.rows() / c.o_groups, l.output_a.cols(), n * c.o_groups});
  }
  add_expert_ffn(s, l.gate_exps, l.up_exps, l.down_exps, n * routed_rows_per_token);
  add_expert_ffn(s, l.gate_shexp, l.up_shexp, l.down_shexp, n);
  const uint32_t ratio = l.compress_ratio;
  StepShapes::Attention a;
  a.tokens = n;
  a.window = c.sliding_window;
  a.compressed = ratio == 0 ? 0 : ratio == 4 ? int64_t{c.indexer_top_k} : context / ratio;
  a.index_keys = ratio == 4 ? context / 4 + 1 : 0;
  a.head_dim = c.head_dim;
  a.n_head = c.n_head;
  a.kv_values = int64_t{c.head_dim} + c.indexer_head_dim;
  a.decoded = storage != KvStorage::kF32;
  s.attention.push_back(a);
}

}  // namespace

StepShapes step_shapes(const V4Weights& w, int64_t tokens, int64_t context,
                       int64_t routed_rows_per_token, KvStorage storage) {
  const V4Config& c = w.config;
  StepShapes s;
  for (const LayerWeights& l : w.layers) {
    add_layer(s, c, l, tokens, context, routed_rows_per_token, storage);
  }
  // The head: HC mix, then the vocabulary's rows for the rows that get logits (at most all).
  add_hc_mix(s, c, w.output_hc.fn, tokens);
  add_product(s, w.output, tokens);
  s.selections.push_back({ForwardWorkspace::logit_rows_for(tokens), int64_t{c.n_vocab},
                          int64_t{kernels::kMaxTokenCandidates}});
  if (w.mtp) {
    // The MTP block drafts up to kMtpMaxRows tokens at once; its projections take each token's
    // n_hc streams (spec §3.7).
    const MtpWeights& m = *w.mtp;
    const int64_t n = std::min<int64_t>(tokens, kMtpMaxRows);
    add_product(s, m.e_proj, n);
    add_product(s, m.h_proj, n * c.n_hc);
    add_product(s, m.eh_proj, n * c.n_hc);
    add_layer(s, c, m.block, n, context, routed_rows_per_token, storage);
    add_hc_mix(s, c, m.hc_head.fn, n);
  }
  return s;
}

ScratchShapes scratch_shapes(const V4Weights& w, int64_t tokens, int64_t decode_rows,
                             int64_t context, int64_t routed_rows_per_token, KvStorage storage) {
  const int64_t recorded = std::min<int64_t>(decode_bucket(decode_rows), tokens);
  return {step_shapes(w, tokens, context, routed_rows_per_token, storage),
          step_shapes(w, recorded, context, routed_rows_per_token, storage)};
}

}  // namespace v4
