#include "model/v4/forward_workspace.h"

#include <algorithm>

#include "kernels/cpu/token_candidates.h"
#include "model/v4/v4_config.h"

namespace v4 {
namespace {

// Tensors start on cache-line boundaries.
constexpr size_t kAlign = 64;

// Places every tensor of `ws` for steps of n_tokens tokens at its offset in `buffer` (null: only
// the offsets); returns the buffer's size.
size_t lay_out(WorkspaceTensors& ws, const V4Config& c, int64_t n_tokens, DeviceBuffer* buffer) {
  const int64_t n = n_tokens, flat = int64_t{c.n_hc} * c.n_embd, d = c.n_embd;
  // Ratio-4 layers project to 2·head_dim (overlapping halves, spec §3.4.3), the widest.
  const int64_t comp_width = 2 * int64_t{c.head_dim};
  const int64_t logit_rows = ForwardWorkspace::logit_rows_for(n);
  const int64_t k = c.n_expert_used;
  struct Slot {
    Tensor* tensor;
    int64_t cols;  // values per token
  };
  const Slot f32[] = {
      {&ws.x, flat},
      {&ws.next, flat},
      {&ws.selected, flat},
      {&ws.y, d},
      {&ws.f, d},
      {&ws.routed, d},
      {&ws.head_z, d},
      {&ws.post, c.n_hc},
      {&ws.comb, int64_t{c.n_hc} * c.n_hc},
      {&ws.cq, c.q_lora_rank},
      {&ws.q, int64_t{c.n_head} * c.head_dim},
      {&ws.o, int64_t{c.n_head} * c.head_dim},
      {&ws.kv, c.head_dim},
      {&ws.comp_a, comp_width},
      {&ws.comp_g, comp_width},
      {&ws.idx_a, 2 * int64_t{c.indexer_head_dim}},
      {&ws.idx_g, 2 * int64_t{c.indexer_head_dim}},
      {&ws.idx_q, int64_t{c.indexer_n_head} * c.indexer_head_dim},
      {&ws.idx_w, c.indexer_n_head},
      {&ws.z, int64_t{c.o_groups} * c.o_lora_rank},
      {&ws.router_logits, c.n_expert},
      {&ws.expert_weights, k},
  };
  const Slot i32[] = {{&ws.experts, k},
                      {&ws.chosen, c.indexer_top_k},
                      {&ws.chosen_count, 1},
                      {&ws.tokens, 1},
                      {&ws.sequence_of, 1}};
  size_t bytes = 0;
  auto place = [&](Tensor* t, GgmlType type, int64_t cols, int64_t n_rows) {
    *t = Tensor::contiguous(buffer, bytes, type, {cols, n_rows, 1, 1});
    bytes += (t->bytes() + kAlign - 1) / kAlign * kAlign;
  };
  for (const Slot& s : f32) place(s.tensor, GgmlType::F32, s.cols, n);
  for (const Slot& s : i32) place(s.tensor, GgmlType::I32, s.cols, n);
  place(&ws.rows, GgmlType::I64, 1, n);
  place(&ws.positions, GgmlType::I64, 1, n);
  // A step has at most one sequence per token.
  place(&ws.sequence_begin, GgmlType::I64, 1, n + 1);
  place(&ws.all_rows, GgmlType::I64, 2, 1);
  place(&ws.counted_pairs, GgmlType::I64, int64_t{c.n_expert_used} + 1, 1);
  place(&ws.mtp_cat, GgmlType::F32, 2 * flat, std::min<int64_t>(n, kMtpMaxRows));
  place(&ws.kv_views, GgmlType::I8, static_cast<int64_t>(sizeof(KvSequenceView)), n);
  place(&ws.logits, GgmlType::F32, c.n_vocab, logit_rows);
  // Every logit batch of a step has its own block (a recorded step reads them all back after).
  place(&ws.candidates, GgmlType::I8,
        static_cast<int64_t>(CompactRowsLayout::of(1, kernels::kMaxTokenCandidates).end), n);
  return bytes;
}

}  // namespace

void ForwardWorkspace::ensure_block_tables(size_t entries) {
  if (block_tables.valid() && static_cast<size_t>(block_tables.ne[0]) >= entries) return;
  const size_t have = block_tables.valid() ? static_cast<size_t>(block_tables.ne[0]) : 0;
  const size_t n = std::max<size_t>({entries, 2 * have, 64});
  block_table_buffer_ = backend_.allocate(n * sizeof(uint32_t));
  block_tables = Tensor::contiguous(block_table_buffer_.get(), 0, GgmlType::I32,
                                    {static_cast<int64_t>(n), 1, 1, 1});
}

uint64_t ForwardWorkspace::bytes_for(const V4Config& config, int64_t tokens) {
  WorkspaceTensors layout;
  return lay_out(layout, config, tokens, nullptr);
}

void ForwardWorkspace::ensure(const V4Config& c, int64_t n_tokens) {
  if (n_tokens <= capacity_) return;
  // Lay out first, then allocate once and place every tensor in the buffer.
  ++generation_;
  arena_ = backend_.allocate(lay_out(*this, c, n_tokens, nullptr));
  lay_out(*this, c, n_tokens, arena_.get());
  keep.resize(static_cast<size_t>(n_tokens));
  capacity_ = n_tokens;
  logit_rows_ = ForwardWorkspace::logit_rows_for(n_tokens);
}

}  // namespace v4
