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
  if (route_probs_.size() < r.n_expert) route_probs_.resize(r.n_expert);
  for (int64_t t = 0; t < n; ++t) {
    const int32_t* hash_row =
        r.hash_table ? r.hash_table + static_cast<size_t>(tokens[t]) * r.hash_width : nullptr;
    kernels::select_experts_row(sel, logits + t * r.n_expert, r.bias, hash_row, route_probs_.data(),
                                experts + t * r.k, weights + t * r.k);
  }
  if (!r.counts) return;
  const int64_t pairs = n * r.k;
  const int64_t counted = r.counted ? std::clamp<int64_t>(*r.counted, 0, pairs) : pairs;
  for (int64_t i = 0; i < counted; ++i) ++r.counts[experts[i]];
}

void CpuBackend::group_by_expert(const int32_t* experts, const float* weights, int64_t n,
                                 uint32_t k, uint32_t n_expert, int64_t* offsets,
                                 int64_t* source_token, float* row_scale, int64_t* slot_row) {
  const int64_t pairs = n * k;
  std::fill_n(offsets, n_expert + 1, 0);
  for (int64_t i = 0; i < pairs; ++i) ++offsets[experts[i] + 1];
  for (uint32_t e = 0; e < n_expert; ++e) offsets[e + 1] += offsets[e];
  // Each expert's next free row, starting at its first.
  task_offsets_.assign(offsets, offsets + n_expert);
  for (int64_t i = 0; i < pairs; ++i) {
    const int64_t row = task_offsets_[static_cast<size_t>(experts[i])]++;
    source_token[row] = i / k;
    row_scale[row] = weights[i];
    slot_row[i] = row;
  }
}

void CpuBackend::for_each_expert_block(const int64_t* offsets, uint32_t n_expert, int64_t rows,
                                       int64_t cols,
                                       FunctionRef<void(int32_t, int64_t, int64_t)> block) {
  const int64_t blocks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  task_offsets_.assign(1, 0);
  task_experts_.clear();
  for (uint32_t e = 0; e < n_expert; ++e) {
    if (offsets[e + 1] == offsets[e]) continue;
    task_experts_.push_back(static_cast<int32_t>(e));
    task_offsets_.push_back(task_offsets_.back() + blocks);
  }
  const int64_t tokens = offsets[n_expert] - offsets[0];
  run(task_offsets_.back(), tokens * rows * cols, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const auto it = std::upper_bound(task_offsets_.begin(), task_offsets_.end(), task) - 1;
      const int64_t r0 = (task - *it) * kRowsPerTask;
      block(task_experts_[static_cast<size_t>(it - task_offsets_.begin())], r0,
            std::min(rows, r0 + kRowsPerTask));
    }
  });
}

void CpuBackend::grouped_expert_ffn(const ExpertFfnWeights& w, const int64_t* offsets,
                                    uint32_t n_expert, int64_t n_rows, const float* x,
                                    const int64_t* x_rows, const float* row_scales, float* y) {
  if (n_rows <= 0) return;
  const int64_t d = w.gate.first.cols, ff = w.gate.first.rows;
  const size_t hidden = static_cast<size_t>(n_rows * ff);
  if (ffn_hidden_.size() < hidden) ffn_hidden_.resize(hidden);
  if (ffn_up_.size() < hidden) ffn_up_.resize(hidden);
  quantize_rows(w.gate.first.type, x, x_rows, d, n_rows, ffn_xq_gate_);
  const bool shared_format = w.up.first.type == w.gate.first.type;
  if (!shared_format) quantize_rows(w.up.first.type, x, x_rows, d, n_rows, ffn_xq_up_);
  const uint8_t* xq_up = shared_format ? ffn_xq_gate_.data() : ffn_xq_up_.data();
  const size_t gate_bytes = kernels::activation_row_bytes(w.gate.first.type, d);
  const size_t up_bytes = kernels::activation_row_bytes(w.up.first.type, d);
  float* h = ffn_hidden_.data();
  float* u = ffn_up_.data();
  // One pass for gate and up: a block knows both projections of its rows, and the clamped
  // SwiGLU is element-wise, so it is applied right there.
  for_each_expert_block(offsets, n_expert, ff, 2 * d, [&](int32_t e, int64_t r0, int64_t r1) {
    const int64_t first = offsets[e], count = offsets[e + 1] - first;
    kernels::matmul_rows(w.gate.matrix(e), ffn_xq_gate_.data() + first * gate_bytes, count,
                         h + first * ff, ff, r0, r1);
    kernels::matmul_rows(w.up.matrix(e), xq_up + first * up_bytes, count, u + first * ff, ff, r0,
                         r1);
    for (int64_t r = first; r < first + count; ++r) {
      kernels::swiglu_row(h + r * ff + r0, u + r * ff + r0, r1 - r0, w.swiglu_limit,
                          row_scales ? row_scales[r] : 1.0f);
    }
  });
  quantize_rows(w.down.first.type, h, nullptr, ff, n_rows, ffn_hq_);
  const size_t down_bytes = kernels::activation_row_bytes(w.down.first.type, ff);
  for_each_expert_block(offsets, n_expert, d, ff, [&](int32_t e, int64_t r0, int64_t r1) {
    const int64_t first = offsets[e], count = offsets[e + 1] - first;
    kernels::matmul_rows(w.down.matrix(e), ffn_hq_.data() + static_cast<size_t>(first) * down_bytes,
                         count, y + first * d, d, r0, r1);
  });
}

}  // namespace v4
