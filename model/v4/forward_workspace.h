// The forward's per-step activations: tensors carved from one buffer the backend allocates on its
// device, sized once from the batch limits (most tokens per step) and reused, so a steady-state
// step allocates nothing. A step larger than the limits re-carves a larger buffer once.
// The step's block tables live in a second device buffer that grows (doubling) with the
// longest tables seen.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "model/backend/backend.h"

namespace v4 {

// The most (H, token) pairs one MTP forward takes (V4Forward::mtp_forward): the drafts of one
// step and the pair before them; the MTP block's raw window ring keeps this many rows beyond the
// sliding window.
constexpr int64_t kMtpMaxRows = 4;

struct V4Config;

// Steps of up to max_tokens tokens over sequences of up to max_context positions; 0: buffers
// grow to the largest step seen.
struct ForwardLimits {
  int64_t max_tokens = 0;
  int64_t max_context = 0;
  // Decode-step recordings kept where the backend makes them (StepGraphs); 0: none.
  size_t step_graphs = 64;
  // Decode steps whose positions are all below this share recordings sized for it (StepGraphs).
  uint64_t graph_positions = 256;
  // Decode steps a recording may run are padded to one of a few batch sizes (decode_bucket()),
  // so that a handful of recordings serve every batch size.
  bool pad_decode_steps = true;
  // With a collective expert dispatcher: every step in two micro-batches, so that one's MoE
  // exchange travels while the other's attention runs (V4Forward::run_micro_batches).
  bool two_micro_batches = false;
};

// Grows `v` to at least `n` elements and returns its data. It never shrinks, so a step after a
// larger one reuses the memory.
// Where a batch of n logit rows with k candidates each keeps, in ForwardWorkspace::candidates,
// what Backend::top_logits and Backend::draw_rows return, end to end so that one copy brings it
// back (byte offsets): ids (i32, n·k), logits (f32, n·k), the log-normalizers (f64, n; at
// 8·n·k, so aligned), the drawn tokens (i32, n) and their logits (f32, n); then the draws'
// parameters (kernels::RowDrawParams, n), which go in. The host copy uses the same offsets.
struct CompactRowsLayout {
  size_t ids, logits, normalizers, tokens, token_logits, params, end;

  static CompactRowsLayout of(size_t n, size_t k) {
    return {0,
            4 * n * k,
            8 * n * k,
            8 * n * k + 8 * n,
            8 * n * k + 12 * n,
            8 * n * k + 16 * n,
            8 * n * k + 16 * n + n * sizeof(kernels::RowDrawParams)};
  }
};

template <class T>
T* fit(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// The step workspace's device tensors (ForwardWorkspace places them in one buffer).
struct WorkspaceTensors {
  // Residual state [n][n_hc·n_embd] (x, next) and sub-layer buffers, on the device.
  Tensor x, next, y, f, post, comb;
  // Attention: projections, compressor inputs, indexer queries, head outputs, low-rank output.
  Tensor cq, q, kv, comp_a, comp_g, idx_a, idx_g, idx_q, idx_w, o, z;
  // Per token: the compressed rows the lightning indexer chose ([n][indexer_top_k], u32).
  Tensor chosen, chosen_count;
  // MoE: router logits, routing (i32 experts), routed sum; the shared expert's one group of
  // every row ({0, n}, i64).
  Tensor router_logits, experts, expert_weights, routed, all_rows;
  // A padded step's real tokens × j for j ≤ n_expert_used (ForwardContext::counted_pairs).
  Tensor counted_pairs;
  // Input ids (i32) and positions (u64); rows that get logits (i64), their HC states, head
  // outputs and logits.
  Tensor tokens, positions, rows, selected, head_z, logits;
  // The logit batches' candidates, draws and draw parameters (CompactRowsLayout, a block per
  // batch). Room for every row of a step with kMaxTokenCandidates.
  Tensor candidates;
  // The KV step (kv_view.h): per token its sequence (u32), per sequence its first token (i64,
  // one more entry), its KvSequenceView (bytes) and, in block_tables, its block table.
  Tensor sequence_of, sequence_begin, kv_views, block_tables;
  // The MTP block's [ê | h_s] rows of up to kMtpMaxRows tokens (n_hc·2·n_embd each).
  Tensor mtp_cat;
};

class ForwardWorkspace : public WorkspaceTensors {
 public:
  explicit ForwardWorkspace(Backend& backend) : backend_(backend) {}

  // Makes every tensor of WorkspaceTensors hold steps of `tokens` tokens; allocates only when
  // growing.
  void ensure(const V4Config& config, int64_t tokens);
  // Makes block_tables hold `entries` page ids; allocates only when growing.
  void ensure_block_tables(size_t entries);
  int64_t capacity() const { return capacity_; }
  // Counts the re-carvings of the tensors below (not the block tables, which the device reaches
  // through the step's views): their addresses change with it.
  uint64_t generation() const { return generation_; }
  // Rows of logits the head computes at once (ws.logits holds that many).
  int64_t logit_rows() const { return logit_rows_; }
  // The same for steps of n_tokens tokens: a prompt-logprobs chunk would otherwise need tokens ×
  // vocab floats on the device.
  static int64_t logit_rows_for(int64_t n_tokens) { return n_tokens < 64 ? n_tokens : 64; }
  // Device bytes ensure(config, tokens) allocates for its tensors (what a server reserves for
  // the step workspace before the weights go to the device).
  static uint64_t bytes_for(const V4Config& config, int64_t tokens);
  // Device bytes the workspace holds (the tensors' arena and the block tables).
  uint64_t bytes() const {
    return (arena_ ? arena_->bytes() : 0) +
           (block_table_buffer_ ? block_table_buffer_->bytes() : 0);
  }

  // Host: which logit rows also return their hidden state.
  std::vector<uint8_t> keep;

 private:
  Backend& backend_;
  std::unique_ptr<DeviceBuffer> arena_, block_table_buffer_;
  int64_t capacity_ = 0, logit_rows_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace v4
