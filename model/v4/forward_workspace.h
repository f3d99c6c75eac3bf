// The forward's per-step activations: tensors carved from one buffer the backend allocates on its
// device, sized once from the batch limits (most tokens per step) and reused, so a steady-state
// step allocates nothing. A step larger than the limits re-carves a larger buffer once.
// The per-task scratch of the sub-layers that still run host loops (attention, the indexer) is
// host memory sized from the context limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "model/backend/backend.h"

namespace v4 {

struct V4Config;

// Steps of up to max_tokens tokens over sequences of up to max_context positions; 0: buffers
// grow to the largest step seen.
struct ForwardLimits {
  int64_t max_tokens = 0;
  int64_t max_context = 0;
};

// Grows `v` to at least `n` elements and returns its data. It never shrinks, so a step after a
// larger one reuses the memory.
template <class T>
T* fit(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

class ForwardWorkspace {
 public:
  explicit ForwardWorkspace(Backend& backend) : backend_(backend) {}

  // Makes every tensor below hold steps of `tokens` tokens; allocates only when growing.
  void ensure(const V4Config& config, int64_t tokens);
  // Sizes the host task scratch for `tasks` parallel tasks and contexts of limits.max_context.
  void reserve_tasks(const V4Config& config, const ForwardLimits& limits, int64_t tasks);
  int64_t capacity() const { return capacity_; }
  // Rows of logits the head computes at once (ws.logits holds that many).
  int64_t logit_rows() const { return logit_rows_; }

  // Residual state [n][n_hc·n_embd] (x, next) and sub-layer buffers, on the device.
  Tensor x, next, y, f, post, comb;
  // Attention: projections, compressor inputs, indexer queries, head outputs, low-rank output.
  Tensor cq, q, kv, comp_a, comp_g, idx_a, idx_g, idx_q, idx_w, o, z;
  // Per token: the compressed rows the lightning indexer chose ([n][indexer_top_k], u32).
  Tensor chosen, chosen_count;
  // MoE: router logits, routing (i32 experts), routed sum.
  Tensor router_logits, experts, expert_weights, routed;
  // Input ids (i32) and positions (u64); rows that get logits (i64), their HC states, head
  // outputs and logits.
  Tensor tokens, positions, rows, selected, head_z, logits;
  // Host: which logit rows also return their hidden state.
  std::vector<uint8_t> keep;
  // Host scratch, one slice per parallel task: the rows a head attends to and their scores, the
  // indexer's candidate ids and scores.
  std::vector<const float*> task_rows;
  std::vector<float> task_scores, task_index_scores;
  std::vector<uint32_t> task_ids;

 private:
  Backend& backend_;
  std::unique_ptr<DeviceBuffer> arena_;
  int64_t capacity_ = 0, logit_rows_ = 0;
};

}  // namespace v4
