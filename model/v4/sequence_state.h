// Per-sequence decode state of the V4 forward (spec §4.1): per layer a raw KV window, compressed
// KV rows, indexer keys and the compressors' carry state, all in the backend's device memory
// and laid out as a KvLayout says. The forward reads and writes it only through the backend's
// KV ops, by the addresses a KvStateStore gives; the worker's paged cache is one store,
// ContiguousKvState (a sequence with pages of its own) the other.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "model/backend/backend.h"
#include "model/backend/kv_view.h"

namespace v4 {

struct V4Config;

class KvStateStore {
 public:
  virtual ~KvStateStore() = default;

  // Tokens already processed; the next token's position.
  virtual uint64_t n_past() const = 0;
  virtual void advance(uint64_t n_tokens) = 0;

  // Makes room for positions [n_past, n_past + n_new): pages for their rows, and ring room for
  // them while keeping the last sliding_window - 1 rows before them readable.
  virtual Status reserve(uint64_t n_new) = 0;

  virtual const KvLayout& layout() const = 0;
  // Device addresses of the state, valid until the next reserve(). block_table is left null:
  // the forward copies block_table() to the device with the step's other inputs.
  virtual KvSequenceView view() = 0;
  virtual std::span<const uint32_t> block_table() const = 0;
};

// A sequence's state slot of `layout.state_floats(ring_rows)` floats on `backend`, its carry area
// at the layout's starting values (a sequence's first step, or its first after a preemption).
Result<std::unique_ptr<DeviceBuffer>> fresh_state_slot(Backend& backend, const KvLayout& layout,
                                                       uint64_t ring_rows);
// The view of such a slot (null: none yet): its carry area, then its rings. No pages.
KvSequenceView state_slot_view(DeviceBuffer* slot, const KvLayout& layout, uint64_t ring_rows);

// A sequence on its own: F32 rows in pages of 128 positions that grow with it (block table
// 0, 1, 2, ...), and rings as deep as the largest chunk so far. For tools and tests; the
// worker's requests use the paged cache.
class ContiguousKvState final : public KvStateStore {
 public:
  ContiguousKvState(const V4Config& config, Backend& backend, bool with_mtp = false);

  uint64_t n_past() const override { return n_past_; }
  void advance(uint64_t n_tokens) override { n_past_ += n_tokens; }
  Status reserve(uint64_t n_new) override;
  const KvLayout& layout() const override { return layout_; }
  KvSequenceView view() override;
  std::span<const uint32_t> block_table() const override { return block_table_; }

 private:
  Backend& backend_;
  KvLayout layout_;
  uint32_t window_;
  uint64_t ring_rows_ = 0;
  uint64_t n_past_ = 0;
  std::unique_ptr<DeviceBuffer> state_, pages_;
  std::vector<uint32_t> block_table_;
};

}  // namespace v4
