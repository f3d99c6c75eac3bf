// CpuBackend's MoE ops (spec §3.5): routing and the grouped expert FFN.
#include <algorithm>

#include "kernels/cpu/moe_routing.h"
#include "model/backend/cpu_backend.h"

namespace v4 {
namespace {

// Output rows per task: threads touch disjoint, contiguous weight ranges.
constexpr int64_t kRowsPerTask = 16;

}  // namespace

void CpuBackend::route_experts(const ExpertRouting& r, const float* logits, const int32_t* tokens,
                               int64_t n, int32_t* experts, float* weights) {
  const kernels::ExpertSelection sel{r.n_expert, r.k, r.weights_scale, r.normalize};
  if (route_probs_.size() < r.n_expert) {
    route_probs_.resize(r.n_expert);
    route_ids_.resize(r.n_expert);
  }
  for (int64_t t = 0; t < n; ++t) {
    const int32_t* hash_row =
        r.hash_table ? r.hash_table + static_cast<size_t>(tokens[t]) * r.hash_width : nullptr;
    kernels::select_experts_row(sel, logits + t * r.n_expert, r.bias, hash_row, route_probs_.data(),
                                route_ids_.data(), experts + t * r.k, weights + t * r.k);
  }
}

void CpuBackend::for_each_group_block(
    std::span<const ExpertGroup> groups, int64_t rows, int64_t cols,
    FunctionRef<void(const ExpertGroup&, int64_t, int64_t)> block) {
  const int64_t blocks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  task_offsets_.assign(1, 0);
  int64_t tokens = 0;
  for (const ExpertGroup& g : groups) {
    task_offsets_.push_back(task_offsets_.back() + (g.n_rows > 0 ? blocks : 0));
    tokens += g.n_rows;
  }
  run(task_offsets_.back(), tokens * rows * cols, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const auto it = std::upper_bound(task_offsets_.begin(), task_offsets_.end(), task) - 1;
      const int64_t r0 = (task - *it) * kRowsPerTask;
      block(groups[static_cast<size_t>(it - task_offsets_.begin())], r0,
            std::min(rows, r0 + kRowsPerTask));
    }
  });
}

void CpuBackend::grouped_expert_ffn(const ExpertFfnWeights& w, std::span<const ExpertGroup> groups,
                                    const float* x, const float* row_scales, float* y) {
  int64_t n_rows = 0;
  for (const ExpertGroup& g : groups) n_rows = std::max(n_rows, g.first_row + g.n_rows);
  if (n_rows == 0) return;
  const int64_t d = w.gate.first.cols, ff = w.gate.first.rows;
  const size_t hidden = static_cast<size_t>(n_rows * ff);
  if (ffn_hidden_.size() < hidden) ffn_hidden_.resize(hidden);
  if (ffn_up_.size() < hidden) ffn_up_.resize(hidden);
  quantize_rows(w.gate.first.type, x, d, n_rows, ffn_xq_gate_);
  const bool shared_format = w.up.first.type == w.gate.first.type;
  if (!shared_format) quantize_rows(w.up.first.type, x, d, n_rows, ffn_xq_up_);
  const uint8_t* xq_up = shared_format ? ffn_xq_gate_.data() : ffn_xq_up_.data();
  const size_t gate_bytes = kernels::activation_row_bytes(w.gate.first.type, d);
  const size_t up_bytes = kernels::activation_row_bytes(w.up.first.type, d);
  float* h = ffn_hidden_.data();
  float* u = ffn_up_.data();
  // One pass for gate and up: a block knows both projections of its rows, and the clamped
  // SwiGLU is element-wise, so it is applied right there.
  for_each_group_block(groups, ff, 2 * d, [&](const ExpertGroup& g, int64_t r0, int64_t r1) {
    const size_t first = static_cast<size_t>(g.first_row);
    kernels::matmul_rows(w.gate.matrix(g.expert), ffn_xq_gate_.data() + first * gate_bytes,
                         g.n_rows, h + g.first_row * ff, ff, r0, r1);
    kernels::matmul_rows(w.up.matrix(g.expert), xq_up + first * up_bytes, g.n_rows,
                         u + g.first_row * ff, ff, r0, r1);
    for (int64_t r = g.first_row; r < g.first_row + g.n_rows; ++r) {
      kernels::swiglu_row(h + r * ff + r0, u + r * ff + r0, r1 - r0, w.swiglu_limit,
                          row_scales ? row_scales[r] : 1.0f);
    }
  });
  quantize_rows(w.down.first.type, h, ff, n_rows, ffn_hq_);
  const size_t down_bytes = kernels::activation_row_bytes(w.down.first.type, ff);
  for_each_group_block(groups, d, ff, [&](const ExpertGroup& g, int64_t r0, int64_t r1) {
    kernels::matmul_rows(w.down.matrix(g.expert),
                         ffn_hq_.data() + static_cast<size_t>(g.first_row) * down_bytes, g.n_rows,
                         y + g.first_row * d, d, r0, r1);
  });
}

}  // namespace v4
