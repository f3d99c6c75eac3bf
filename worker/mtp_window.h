// The raw window of the MTP block (spec §3.7, §4.1: the block attends over its last 128 rows
// only; it has no compressor and no indexer) for one sequence, as the KvStateStore the forward's
// mtp_draft writes: the layout's MTP layer (slot n_layer) reads ring 0 of a state slot with no
// carry area and no pages.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/v4/forward_workspace.h"
#include "model/v4/kv_layout.h"
#include "model/v4/sequence_state.h"
#include "model/v4/v4_config.h"
#include "worker/draft_source.h"

namespace v4 {

class MtpWindow final : public KvStateStore {
 public:
  MtpWindow(const V4Config& c, Backend& backend)
      : backend_(backend),
        layout_(make_kv_layout(c, KvStorage::kF32, 128, true)),
        ring_rows_(uint64_t{c.sliding_window} + kMtpMaxRows) {
    layout_.layers.back().raw_slot = 0;
    layout_.carry_floats = 0;
    layout_.initial_carry.clear();
  }

  uint64_t n_past() const override { return n_past_; }
  void advance(uint64_t n_tokens) override { n_past_ += n_tokens; }
  // Drops the rows at and past `n` (drafts not verified) or skips to `n`.
  void set_n_past(uint64_t n) { n_past_ = n; }
  // A fresh window's first position (it may start after 0: only the last window matters).
  void start(uint64_t n) {
    n_past_ = n;
    started_ = true;
  }
  bool started() const { return started_; }
  Status reserve(uint64_t n_new) override {
    // A forward's rows must not wrap onto rows its first token still reads.
    if (n_new < 1 || n_new > static_cast<uint64_t>(kMtpMaxRows)) {
      return Status::error("MTP window: 1 to " + std::to_string(kMtpMaxRows) + " tokens per call");
    }
    if (ring_) return Status::ok();
    const size_t floats = ring_rows_ * layout_.format.shape.head_dim;
    ring_ = backend_.allocate(floats * sizeof(float));
    if (!ring_) return Status::error("MTP window: out of device memory");
    // Zero rows: a window that starts after position 0 reads finite values where it has none.
    const std::vector<float> zeros(floats, 0.0f);
    const Tensor all =
        Tensor::contiguous(ring_.get(), 0, GgmlType::F32, {static_cast<int64_t>(floats), 1, 1, 1});
    return backend_.copy_to_device(zeros.data(), all, 0, floats * sizeof(float));
  }
  const KvLayout& layout() const override { return layout_; }
  KvSequenceView view() override {
    KvSequenceView v;
    v.raw = ring_ ? static_cast<float*>(ring_->data()) : nullptr;
    v.ring_rows = ring_rows_;
    return v;
  }
  std::span<const uint32_t> block_table() const override { return {}; }
  // The K/V row the ring holds for position `pos` (written by the position, or by one a multiple
  // of the ring's length away); empty before the first forward. For inspection.
  std::span<const float> row(uint64_t pos) const {
    if (!ring_) return {};
    const size_t width = layout_.format.shape.head_dim;
    return {static_cast<const float*>(ring_->data()) + (pos % ring_rows_) * width, width};
  }

 private:
  Backend& backend_;
  KvLayout layout_;
  uint64_t ring_rows_;
  uint64_t n_past_ = 0;
  bool started_ = false;
  std::unique_ptr<DeviceBuffer> ring_;
};

}  // namespace v4
