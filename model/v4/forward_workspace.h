// The forward's per-step activation buffers, kept across steps: sized once from the batch
// limits (most tokens per step) and reused, so a steady-state step allocates nothing. A step
// larger than the limits grows them (and allocates) once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

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

struct ForwardWorkspace {
  // Residual state [n][n_hc·n_embd] (x, next) and sub-layer buffers.
  std::vector<float> x, next, y, f, post, comb;
  // Attention: projections, compressor inputs, indexer queries, head outputs, low-rank output.
  std::vector<float> cq, q, kv, comp_a, comp_g, idx_a, idx_g, idx_q, idx_w, o, z;
  // Per token: the compressed rows chosen by the lightning indexer ([n][indexer_top_k]).
  std::vector<uint32_t> chosen, chosen_count;
  // MoE: router logits, routing, routed sum.
  std::vector<float> router_logits, expert_weights, routed;
  std::vector<int32_t> experts;
  // Head: which rows get logits, their HC states and head outputs.
  std::vector<int64_t> rows;
  std::vector<uint8_t> keep;
  std::vector<float> selected, head_z;
  // Scratch of the parallel tasks of attention and the indexer, one slice per task: the rows a
  // head attends to and their scores, the indexer's candidate ids and scores.
  std::vector<const float*> task_rows;
  std::vector<float> task_scores, task_index_scores;
  std::vector<uint32_t> task_ids;

  // Sizes every buffer for steps of `limits.max_tokens` tokens (logits for each of them) and, for
  // `tasks` parallel tasks, contexts of limits.max_context positions.
  void reserve(const V4Config& config, const ForwardLimits& limits, int64_t tasks);
};

}  // namespace v4
