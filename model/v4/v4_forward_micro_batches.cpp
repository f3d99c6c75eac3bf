// Two micro-batches (the two-batch overlap of SGLang, DeepSeek's dual micro-batch): with an
// expert-parallel dispatcher the step's sequences are split in two, A and B, and each MoE layer's
// exchange of one half travels while the other half computes:
//
//   attention(A, 0)
//   for each layer l:
//     MoE(A, l)  beside  attention(B, l)
//     MoE(B, l)  beside  attention(A, l + 1)
//
// A token's arithmetic is the same in either half and in the whole batch (the forward is
// batch-invariant), so the split changes no result. The halves share the workspace's scratch,
// which their sub-layers use one after the other on this thread; each keeps its own rows of the
// HC states, the mixes and the sub-layer inputs and outputs (V4Forward::block_rows), and its
// own KV step (B's sequence arrays rebased to its first sequence).
#include <algorithm>

#include "model/v4/moe.h"
#include "model/v4/v4_forward.h"

namespace v4 {

Status V4Forward::split_micro_batches() {
  const ForwardBatch& b = batch_;
  const auto n_seqs = static_cast<int64_t>(b.states.size());
  const int64_t n = b.size();
  // The first sequence that starts at or past half the tokens begins B (at least one sequence
  // in A; B may be empty).
  int64_t split = 1;
  while (split < n_seqs && b.sequence_begin[static_cast<size_t>(split)] * 2 < n) ++split;
  const int64_t n_a = b.sequence_begin[static_cast<size_t>(split)];
  MicroBatch& a = halves_[0];
  MicroBatch& h = halves_[1];
  a = {0, n_a, 0, kv_step_};
  a.kv.n_sequences = split;
  a.kv.n_tokens = n_a;
  h = {n_a, n - n_a, split, kv_step_};
  h.kv.n_sequences = n_seqs - split;
  h.kv.n_tokens = n - n_a;
  // Host-side bounds per half.
  for (MicroBatch* m : {&a, &h}) {
    m->kv.position_end = 0;
    m->kv.max_pages = 0;
    for (int64_t t = m->first_token; t < m->first_token + m->n_tokens; ++t)
      m->kv.position_end = std::max(m->kv.position_end, b.positions[static_cast<size_t>(t)] + 1);
    for (int64_t s = m->first_sequence; s < m->first_sequence + m->kv.n_sequences; ++s)
      m->kv.max_pages = std::max(m->kv.max_pages, b.views[static_cast<size_t>(s)].n_pages);
  }
  // B's sequence starts and token-to-sequence map, rebased; both halves' {0, n} for the shared
  // expert. int64 values first, then the uint32 map.
  std::vector<int64_t> ints = {0, n_a, 0, n - n_a};
  for (int64_t s = split; s <= n_seqs; ++s)
    ints.push_back(b.sequence_begin[static_cast<size_t>(s)] - n_a);
  std::vector<uint32_t> sequence_of;
  for (int64_t t = n_a; t < n; ++t)
    sequence_of.push_back(b.sequence_of[static_cast<size_t>(t)] - static_cast<uint32_t>(split));
  const size_t int_bytes = ints.size() * sizeof(int64_t);
  const size_t bytes = int_bytes + std::max<size_t>(sequence_of.size(), 1) * sizeof(uint32_t);
  if (!half_arrays_ || half_arrays_->bytes() < bytes)
    half_arrays_ =
        backend_.allocate(std::max(bytes, 2 * (half_arrays_ ? half_arrays_->bytes() : 0)));
  const Tensor all = Tensor::whole(half_arrays_.get());
  Status s = backend_.copy_to_device(ints.data(), all, 0, int_bytes);
  if (s && !sequence_of.empty())
    s = backend_.copy_to_device(sequence_of.data(), all, int_bytes,
                                sequence_of.size() * sizeof(uint32_t));
  if (!s) return s;
  auto* device_ints = static_cast<int64_t*>(half_arrays_->data());
  h.kv.sequences = kv_step_.sequences + split;
  h.kv.sequence_begin = device_ints + 4;
  h.kv.sequence_of = reinterpret_cast<const uint32_t*>(
      static_cast<const uint8_t*>(half_arrays_->data()) + int_bytes);
  h.kv.positions = kv_step_.positions + n_a;
  return Status::ok();
}

const float* V4Forward::run_micro_batches(const ForwardContext& whole) {
  const V4Config& c = weights_.config;
  const int64_t flat = int64_t{c.n_hc} * c.n_embd;
  const auto* shared_rows = static_cast<const int64_t*>(half_arrays_->data());
  const auto context = [&](const MicroBatch& m, int half) {
    ForwardContext ctx{whole.config, whole.backend, whole.experts,   whole.ws,
                       whole.batch,  whole.stats,   whole.kv_layout, m.kv};
    ctx.first_token = m.first_token;
    ctx.n_tokens = m.n_tokens;
    ctx.shared_rows = shared_rows + 2 * half;
    return ctx;
  };
  const ForwardContext ctx[2] = {context(halves_[0], 0), context(halves_[1], 1)};
  float* x = ws_.x.data<float>();
  float* next = ws_.next.data<float>();
  backend_.embed(weights_.token_embd.view, ws_.tokens.data<int32_t>(), whole.batch.size(), c.n_hc,
                 x);
  // Each half's HC states and scratch rows; both swap in step, so they end in the same buffer.
  float* xs[2] = {x, x + halves_[1].first_token * flat};
  float* nexts[2] = {next, next + halves_[1].first_token * flat};
  const auto attention = [&](int h, uint32_t layer) {
    if (ctx[h].size() > 0)
      attention_half(ctx[h], weights_.layers[layer], layer, xs[h], nexts[h]);
    else
      std::swap(xs[h], nexts[h]);
  };
  const auto ffn = [&](int h, uint32_t layer, FunctionRef<void()> also) {
    if (ctx[h].size() > 0) {
      ffn_half(ctx[h], weights_.layers[layer], layer, xs[h], nexts[h], also);
      return;
    }
    // An empty half still joins the layer's exchange (the other ranks' halves may have rows).
    join_layer_empty(layer, also);
    std::swap(xs[h], nexts[h]);
  };
  attention(0, 0);
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    ffn(0, l, [&] { attention(1, l); });
    ffn(1, l, [&] {
      if (l + 1 < c.n_layer) attention(0, l + 1);
    });
  }
  return xs[0];
}

}  // namespace v4
