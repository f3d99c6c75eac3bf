#include "model/v4/forward_workspace.h"

#include <algorithm>

#include "model/v4/v4_config.h"

namespace v4 {

void ForwardWorkspace::reserve(const V4Config& c, const ForwardLimits& limits, int64_t tasks) {
  if (limits.max_context > 0) {
    const size_t t = static_cast<size_t>(tasks), ctx = static_cast<size_t>(limits.max_context);
    // A head reads the raw window plus the chosen ratio-4 rows or every ratio-128 row (§3.4).
    const size_t rows = c.sliding_window + std::max<size_t>(c.indexer_top_k, ctx / 128 + 1);
    fit(task_rows, t * rows);
    fit(task_scores, t * rows);
    fit(task_ids, t * (ctx / 4 + 1));
    fit(task_index_scores, t * (ctx / 4 + 1));
  }
  const int64_t tokens = limits.max_tokens;
  if (tokens <= 0) return;
  const size_t n = static_cast<size_t>(tokens);
  const size_t flat = size_t{c.n_hc} * c.n_embd, d = c.n_embd;
  size_t comp_width = 0;
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    comp_width = std::max<size_t>(comp_width, c.compressor_width(il));
  }
  const size_t k = c.n_expert_used;
  for (auto* v : {&x, &next, &selected}) fit(*v, n * flat);
  for (auto* v : {&y, &f, &routed, &head_z}) fit(*v, n * d);
  fit(post, n * c.n_hc);
  fit(comb, n * c.n_hc * c.n_hc);
  fit(cq, n * c.q_lora_rank);
  fit(q, n * c.n_head * c.head_dim);
  fit(o, n * c.n_head * c.head_dim);
  fit(kv, n * c.head_dim);
  for (auto* v : {&comp_a, &comp_g}) fit(*v, n * comp_width);
  for (auto* v : {&idx_a, &idx_g}) fit(*v, n * 2 * c.indexer_head_dim);
  fit(idx_q, n * c.indexer_n_head * c.indexer_head_dim);
  fit(idx_w, n * c.indexer_n_head);
  fit(z, n * c.o_groups * c.o_lora_rank);
  fit(chosen, n * c.indexer_top_k);
  fit(chosen_count, n);
  fit(router_logits, n * c.n_expert);
  fit(expert_weights, n * k);
  fit(experts, n * k);
  fit(rows, n);
  fit(keep, n);
}

}  // namespace v4
