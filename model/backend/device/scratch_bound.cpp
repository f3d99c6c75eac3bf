#include "model/backend/device/scratch_bound.h"

#include <algorithm>

#include "model/backend/device/device_ops_matmul.h"
#include "model/backend/device/device_ops_sampling.h"
#include "model/backend/device/device_ops_top_logits.h"

namespace v4::device {
namespace {

class SlotPeaks {
 public:
  void ask(ScratchSlot slot, uint64_t bytes) { peaks_[slot] = std::max(peaks_[slot], bytes); }
  const ScratchSizes& sizes() const { return peaks_; }

 private:
  ScratchSizes peaks_;
};

// quantize_activations / activation_rows: n quantized rows and their padding; float weights take
// their activations as they are.
void ask_activations(SlotPeaks& p, ScratchSlot slot, GgmlType type, int64_t cols, int64_t n) {
  const ActivationFormat f = activation_format(type, cols);
  if (f.kind == ActivationFormat::kFloat) return;
  const size_t pad = f.kind == ActivationFormat::kSplitQ8_0 ? 16 : 1;
  p.ask(slot, f.row_bytes * static_cast<uint64_t>(n) + pad);
}

// matmul_typed: the activations, and each chunk's partial sums when a row has several chunks.
void ask_product(SlotPeaks& p, const StepShapes::Product& m) {
  ask_activations(p, ScratchSlot::kMatmulActivations, m.type, m.cols, m.inputs);
  const int64_t chunk = chunk_units(m.type);
  const int64_t chunks = (row_units(m.type, m.cols) + chunk - 1) / chunk;
  if (chunks > 1) {
    p.ask(ScratchSlot::kMatmulMid, static_cast<uint64_t>(m.inputs * m.rows * chunks) * 4);
  }
}

// grouped_expert_ffn: gate (and up, when its type differs) activations, the gate and up rows,
// the down product's activations, and the tensor-core tile numbering.
void ask_expert_ffn(SlotPeaks& p, const StepShapes::ExpertFfn& x) {
  ask_activations(p, ScratchSlot::kMatmulActivations, x.gate, x.d, x.rows);
  if (x.up != x.gate) ask_activations(p, ScratchSlot::kMatmulAux, x.up, x.d, x.rows);
  p.ask(ScratchSlot::kMatmulMid, 2 * static_cast<uint64_t>(x.rows * x.ff) * 4);
  ask_activations(p, ScratchSlot::kMatmulAux, x.down, x.ff, x.rows);
  p.ask(ScratchSlot::kMatmulTiles, (uint64_t{x.n_expert} + 1) * 8);
}

// hc_mixes: the unscaled mixes (the fn product is one of the products).
void ask_hc_mix(SlotPeaks& p, const StepShapes::HcMix& h) {
  p.ask(ScratchSlot::kElementwiseAux, static_cast<uint64_t>(h.tokens * h.rows) * 4);
}

// top_logits: each (row, part)'s picks (values and ids) and, when normalizing, its sum.
// draw_rows, over the same rows: each (row, part)'s range, and each row's totals.
void ask_selection(SlotPeaks& p, const StepShapes::Selection& x) {
  const auto parts = static_cast<uint64_t>(x.rows * top_logits_parts(x.vocab));
  p.ask(ScratchSlot::kElementwise, parts * static_cast<uint64_t>(x.k) * 8);
  p.ask(ScratchSlot::kElementwiseAux, parts * 8);
  p.ask(ScratchSlot::kElementwise, parts * sizeof(detail::DrawPart));
  p.ask(ScratchSlot::kElementwiseAux, static_cast<uint64_t>(x.rows * kDrawTotals) * 8);
}

// attention_group: tokens per group under the bound, at least one.
int64_t group_of(uint64_t bound, uint64_t per_token, int64_t n) {
  const uint64_t fit = bound / std::max<uint64_t>(per_token, 1);
  return std::clamp<int64_t>(static_cast<int64_t>(std::min<uint64_t>(fit, INT64_MAX)), 1, n);
}

// kv_append, indexer_topk and sparse_attention (device_ops_attention.h,
// device_ops_sparse_attention.h).
void ask_attention(SlotPeaks& p, const StepShapes::Attention& a, uint64_t bound) {
  const int64_t n = a.tokens;
  if (n <= 0) return;
  p.ask(ScratchSlot::kAttentionAux, static_cast<uint64_t>(n * a.kv_values) * 4);
  if (a.index_keys > 0) {
    const int64_t group = group_of(bound, static_cast<uint64_t>(a.index_keys) * 4, n);
    p.ask(ScratchSlot::kAttentionScores, static_cast<uint64_t>(group * a.index_keys) * 4);
  }
  const int64_t slice = a.window + a.compressed;
  const uint64_t per_token =
      static_cast<uint64_t>(slice) * sizeof(const float*) + 4 +
      (a.decoded ? static_cast<uint64_t>(a.compressed * a.head_dim) * 4 : 0) +
      static_cast<uint64_t>(a.n_head * slice) * 4;
  const int64_t group = group_of(bound, per_token, n);
  p.ask(ScratchSlot::kAttentionAux, static_cast<uint64_t>(group * slice) * sizeof(const float*));
  p.ask(ScratchSlot::kElementwiseAux, static_cast<uint64_t>(group) * 4);
  if (a.decoded) {
    p.ask(ScratchSlot::kAttentionAux2,
          (static_cast<uint64_t>(group * a.compressed * a.head_dim) + 1) * 4);
  }
  p.ask(ScratchSlot::kAttentionScores, static_cast<uint64_t>(group * a.n_head * slice) * 4);
}

}  // namespace

ScratchSizes scratch_need(const StepShapes& shapes, const DeviceOpOptions& options) {
  SlotPeaks peaks;
  for (const StepShapes::Product& m : shapes.products) ask_product(peaks, m);
  for (const StepShapes::ExpertFfn& x : shapes.expert_ffns) ask_expert_ffn(peaks, x);
  for (const StepShapes::HcMix& h : shapes.hc_mixes) ask_hc_mix(peaks, h);
  for (const StepShapes::Attention& a : shapes.attention) {
    ask_attention(peaks, a, options.attention_scratch_bytes);
  }
  for (const StepShapes::Selection& x : shapes.selections) ask_selection(peaks, x);
  return peaks.sizes();
}

}  // namespace v4::device
