#include "model/v4/moe.h"

#include <algorithm>

#include "model/v4/expert_dispatcher.h"
#include "model/v4/v4_weights.h"

namespace v4 {
namespace {

ExpertStack stack(const WeightMatrix& m) { return {m.view, m.mat_bytes}; }

}  // namespace

ExpertRouting expert_routing(const V4Config& c, const LayerWeights& w) {
  ExpertRouting r;
  r.n_expert = c.n_expert;
  r.weights_scale = c.expert_weights_scale;
  r.normalize = c.expert_weights_norm;
  if (w.hash_routed()) {
    // The table row of the input token names the experts; p still gives the weights.
    r.k = std::min(w.tid2eid_width, c.n_expert_used);
    r.hash_table = w.tid2eid.device();
    r.hash_width = w.tid2eid_width;
  } else {
    r.k = c.n_expert_used;
    r.bias = w.exp_probs_b.device();
  }
  return r;
}

ExpertFfnWeights routed_experts(const V4Config& c, const LayerWeights& w) {
  return {stack(w.gate_exps), stack(w.up_exps), stack(w.down_exps), c.swiglu_limit};
}

ExpertFfnWeights shared_expert(const V4Config& c, const LayerWeights& w) {
  return {stack(w.gate_shexp), stack(w.up_shexp), stack(w.down_shexp), c.swiglu_limit};
}

ExpertChoice select_experts(const V4Config& c, const LayerWeights& w, const float* logits,
                            int32_t token) {
  ExpertRouting r = expert_routing(c, w);
  // This reference path runs on the host: it reads the host copies of the bias and table.
  r.bias = w.exp_probs_b.empty() ? nullptr : w.exp_probs_b.data();
  r.hash_table = w.tid2eid.empty() ? nullptr : w.tid2eid.data();
  const kernels::ExpertSelection sel{r.n_expert, r.k, r.weights_scale, r.normalize};
  std::vector<float> probs(c.n_expert);
  ExpertChoice out;
  out.experts.resize(r.k);
  out.weights.resize(r.k);
  const int32_t* hash_row =
      r.hash_table ? r.hash_table + static_cast<size_t>(token) * r.hash_width : nullptr;
  kernels::select_experts_row(sel, logits, r.bias, hash_row, probs.data(), out.experts.data(),
                              out.weights.data());
  return out;
}

const float* moe_forward(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer,
                         const float* u, float* out, uint64_t* selections,
                         FunctionRef<void()> also) {
  const V4Config& c = ctx.config;
  Backend& be = ctx.backend;
  ForwardWorkspace& ws = ctx.ws;
  const int64_t n = ctx.size(), d = c.n_embd;
  ExpertRouting routing = expert_routing(c, w);
  // The load counters count as the experts are chosen; a padded step counts its real tokens'
  // selections only (v4_forward_batch.h).
  routing.counts = selections;
  routing.counted = ctx.counted_pairs ? ctx.counted_pairs + routing.k : nullptr;
  float* logits = ws.router_logits.data<float>();
  int32_t* experts = ws.experts.data<int32_t>();
  float* weights = ws.expert_weights.data<float>();
  float* routed = ws.routed.data<float>();
  be.matmul(w.router.view, u, n, logits);
  be.route_experts(routing, logits, ctx.tokens(), n, experts, weights);
  // The shared expert (one group of every row: {0, n} in the workspace) runs while an
  // expert-parallel dispatcher's rows travel.
  const auto shared = [&] {
    be.grouped_expert_ffn(shared_expert(c, w), ctx.all_rows(), 1, n, u, nullptr, nullptr, out);
    also();
  };
  ctx.experts.dispatch_combine(layer, routed_experts(c, w),
                               {u, experts, weights, n, routing.k, d, c.n_expert}, routed, shared);
  return routed;
}

}  // namespace v4
