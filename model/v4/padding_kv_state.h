// The state of a decode step's padding rows (docs/design.md, "Decode steps as graphs"): a step
// a recording may run is padded up to one of a few batch sizes with rows of one token at
// position 0, so that a handful of recordings serve every batch size. Those rows' outputs are
// thrown away; what matters is that they touch no real sequence's memory. All of a step's
// padding rows share this one state: at position 0 a row reads and writes only its raw ring and
// carry area (no compressed row exists before position ratio − 1, spec §3.4.3, so no page is
// read or written), and what the padding rows write there is never read by a real row.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "core/status.h"
#include "model/backend/backend.h"
#include "model/v4/sequence_state.h"

namespace v4 {

class PaddingKvState final : public KvStateStore {
 public:
  // `layout`: the real sequences' (every sequence of a step shares one); `window`: the model's
  // sliding window.
  PaddingKvState(const KvLayout& layout, Backend& backend, uint32_t window);

  // Always at position 0: a padding row never advances.
  uint64_t n_past() const override { return 0; }
  void advance(uint64_t) override {}
  // One token per row; the state slot on first use.
  Status reserve(uint64_t n_new) override;
  const KvLayout& layout() const override { return layout_; }
  // No pages: nothing at position 0 reaches them.
  KvSequenceView view() override;
  std::span<const uint32_t> block_table() const override { return {}; }

 private:
  Backend& backend_;
  KvLayout layout_;
  uint64_t ring_rows_;
  std::unique_ptr<DeviceBuffer> state_;
};

}  // namespace v4
