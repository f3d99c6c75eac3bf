// The MoE feed-forward (spec §3.5): sqrt-softplus router, top-k selection on biased scores (or the
// tid2eid table on hash-routed layers), normalised and scaled weights, clamped SwiGLU experts
// (routed, through the ExpertDispatcher seam, and shared).
#pragma once

#include <cstdint>
#include <vector>

#include "core/function_ref.h"
#include "kernels/cpu/moe_routing.h"
#include "model/v4/v4_forward_batch.h"

namespace v4 {

struct LayerWeights;

struct ExpertChoice {
  std::vector<int32_t> experts;  // selection order
  std::vector<float> weights;
};

using kernels::sqrt_softplus;

// The layer's routing rule and its expert stacks, as the Backend takes them.
ExpertRouting expert_routing(const V4Config& config, const LayerWeights& w);
ExpertFfnWeights routed_experts(const V4Config& config, const LayerWeights& w);
ExpertFfnWeights shared_expert(const V4Config& config, const LayerWeights& w);

// Chooses the experts of one token from its router logits (spec §3.5).
ExpertChoice select_experts(const V4Config& config, const LayerWeights& w, const float* logits,
                            int32_t token);

// u: [n][n_embd] ffn-normed inputs. The MoE's output is the sum of two [n][n_embd] parts: the
// shared expert's, written to `out`, and the routed experts' weighted sum, returned (workspace
// rows, valid until the next MoE call); Backend::hc_post adds them as it reads them.
// `selections` (n_expert counters, may be null) gets one count per (token, chosen expert).
// `also` runs after the shared expert, while an expert-parallel dispatcher's rows travel (the
// other micro-batch's attention); it must not touch this call's inputs, outputs or the
// workspace's routing buffers.
const float* moe_forward(
    const ForwardContext& ctx, const LayerWeights& w, uint32_t layer, const float* u, float* out,
    uint64_t* selections = nullptr, FunctionRef<void()> also = [] {});

}  // namespace v4
