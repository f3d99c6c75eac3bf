#include "model/v4/forward_workspace.h"

#include <algorithm>

#include "kernels/cpu/token_candidates.h"
#include "model/v4/v4_config.h"

namespace v4 {
namespace {

// Tensors start on cache-line boundaries.
constexpr size_t kAlign = 64;

}  // namespace

void ForwardWorkspace::ensure_block_tables(size_t entries) {
  if (block_tables.valid() && static_cast<size_t>(block_tables.ne[0]) >= entries) return;
  const size_t have = block_tables.valid() ? static_cast<size_t>(block_tables.ne[0]) : 0;
  const size_t n = std::max<size_t>({entries, 2 * have, 64});
  block_table_buffer_ = backend_.allocate(n * sizeof(uint32_t));
  block_tables = Tensor::contiguous(block_table_buffer_.get(), 0, GgmlType::I32,
                                    {static_cast<int64_t>(n), 1, 1, 1});
}

void ForwardWorkspace::ensure(const V4Config& c, int64_t n_tokens) {
  if (n_tokens <= capacity_) return;
  const int64_t n = n_tokens, flat = int64_t{c.n_hc} * c.n_embd, d = c.n_embd;
  // Ratio-4 layers project to 2·head_dim (overlapping halves, spec §3.4.3), the widest.
  const int64_t comp_width = 2 * int64_t{c.head_dim};
  // Logits of a step come out in batches of at most this many rows: a prompt-logprobs chunk
  // would otherwise need tokens × vocab floats on the device.
  const int64_t logit_rows = std::min<int64_t>(n, 64);
  const int64_t k = c.n_expert_used;
  struct Slot {
    Tensor* tensor;
    int64_t cols;  // values per token
  };
  const Slot f32[] = {
      {&x, flat},
      {&next, flat},
      {&selected, flat},
      {&y, d},
      {&f, d},
      {&routed, d},
      {&head_z, d},
      {&post, c.n_hc},
      {&comb, int64_t{c.n_hc} * c.n_hc},
      {&cq, c.q_lora_rank},
      {&q, int64_t{c.n_head} * c.head_dim},
      {&o, int64_t{c.n_head} * c.head_dim},
      {&kv, c.head_dim},
      {&comp_a, comp_width},
      {&comp_g, comp_width},
      {&idx_a, 2 * int64_t{c.indexer_head_dim}},
      {&idx_g, 2 * int64_t{c.indexer_head_dim}},
      {&idx_q, int64_t{c.indexer_n_head} * c.indexer_head_dim},
      {&idx_w, c.indexer_n_head},
      {&z, int64_t{c.o_groups} * c.o_lora_rank},
      {&router_logits, c.n_expert},
      {&expert_weights, k},
  };
  const Slot i32[] = {{&experts, k},
                      {&chosen, c.indexer_top_k},
                      {&chosen_count, 1},
                      {&tokens, 1},
                      {&sequence_of, 1}};
  // Lay out first, then allocate once and point every tensor into the buffer.
  size_t bytes = 0;
  auto place = [&](Tensor* t, GgmlType type, int64_t cols, int64_t n_rows) {
    *t = Tensor::contiguous(nullptr, bytes, type, {cols, n_rows, 1, 1});
    bytes += (t->bytes() + kAlign - 1) / kAlign * kAlign;
  };
  for (const Slot& s : f32) place(s.tensor, GgmlType::F32, s.cols, n);
  for (const Slot& s : i32) place(s.tensor, GgmlType::I32, s.cols, n);
  place(&rows, GgmlType::I64, 1, n);
  place(&positions, GgmlType::I64, 1, n);
  // A step has at most one sequence per token.
  place(&sequence_begin, GgmlType::I64, 1, n + 1);
  place(&all_rows, GgmlType::I64, 2, 1);
  place(&counted_pairs, GgmlType::I64, int64_t{c.n_expert_used} + 1, 1);
  place(&mtp_cat, GgmlType::F32, 2 * flat, std::min<int64_t>(n, kMtpMaxRows));
  place(&kv_views, GgmlType::I8, static_cast<int64_t>(sizeof(KvSequenceView)), n);
  place(&logits, GgmlType::F32, c.n_vocab, logit_rows);
  // Every logit batch of a step has its own block (a recorded step reads them all back after).
  place(&candidates, GgmlType::I8,
        static_cast<int64_t>(CompactRowsLayout::of(1, kernels::kMaxTokenCandidates).end), n);
  ++generation_;
  arena_ = backend_.allocate(bytes);
  for (const Slot& s : f32) s.tensor->buffer = arena_.get();
  for (const Slot& s : i32) s.tensor->buffer = arena_.get();
  rows.buffer = arena_.get();
  positions.buffer = arena_.get();
  sequence_begin.buffer = arena_.get();
  all_rows.buffer = arena_.get();
  counted_pairs.buffer = arena_.get();
  mtp_cat.buffer = arena_.get();
  kv_views.buffer = arena_.get();
  logits.buffer = arena_.get();
  candidates.buffer = arena_.get();
  keep.resize(static_cast<size_t>(n));
  capacity_ = n_tokens;
  logit_rows_ = logit_rows;
}

}  // namespace v4
