// One sequence's view of the paged KV cache, as the KvStateStore the forward reads and writes
// (spec §4.1). Compressed rows and indexer keys go to the pages of the sequence's block table;
// the raw window is a ring of sliding_window + max_chunk rows (§4.4: "a ring of 128 rows plus
// room for the current prefill chunk") and the compressor carries sit beside it, in one state
// slot the sequence holds on the backend's device. The backend's KV ops encode each finished
// row into its page as soon as the compressor produces it, so a row reads the same within its
// step as after (chunking invariance).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/v4/sequence_state.h"
#include "model/v4/v4_config.h"
#include "scheduler/step_plan.h"
#include "worker/paged_kv_cache.h"

namespace v4 {

// What a sequence resumed at a page boundary needs besides the rows in its shared pages (spec
// §4.4: the carry state is not derivable from cached rows): the carry area and, per layer, the
// raw rows of the last sliding_window positions, in one device buffer.
struct KvSnapshot {
  uint64_t n_past = 0;
  std::unique_ptr<DeviceBuffer> state;  // carry area, then per layer `window` rows in order
  size_t bytes() const { return state ? state->bytes() : 0; }
};

// A snapshot's state to or from host memory (the prefix pages' disk store): `bytes` must be
// snapshot_bytes(), the size every snapshot of the layout has.
Status copy_snapshot_to_host(Backend& backend, const KvSnapshot& snapshot, uint8_t* host,
                             size_t bytes);
Result<KvSnapshot> snapshot_from_host(Backend& backend, uint64_t n_past, const uint8_t* host,
                                      size_t bytes);

class PagedSequenceKv final : public KvStateStore {
 public:
  // `max_chunk`: the most tokens one forward call may add.
  PagedSequenceKv(const V4Config& config, PagedKvCache& cache, uint32_t max_chunk);

  // The block table for the coming step (the scheduler's, possibly grown).
  void set_pages(const std::vector<PageId>& pages) { pages_ = pages; }

  uint64_t n_past() const override { return n_past_; }
  void advance(uint64_t n_tokens) override { n_past_ += n_tokens; }
  Status reserve(uint64_t n_new) override;
  const KvLayout& layout() const override { return cache_.layout(); }
  KvSequenceView view() override;
  std::span<const uint32_t> block_table() const override { return pages_; }

  // The state at n_past, as device copies. restore() makes a fresh sequence continue from it
  // bit-exactly, its rows read from the shared pages of set_pages().
  Result<KvSnapshot> snapshot() const;
  Status restore(const KvSnapshot& snapshot);

  // Speculative decoding: the carry area (the compressors' streaming state, spec §3.4.3) at
  // n_past, saved into `into` (its buffer reused) before a step that runs draft tokens, and the
  // return to it when a draft is rejected (spec §4.4). Nothing else needs saving: raw rows of
  // earlier positions sit in ring rows a step of at most max_chunk tokens does not reach, and
  // compressed rows the step wrote for positions past the saved n_past are written again, with
  // the same values, when those positions run again.
  Status save_carry(KvSnapshot& into) const;
  void rollback(const KvSnapshot& saved);

  // Fixed bytes a sequence holds outside pages (raw ring and carry state), for the budget.
  static size_t fixed_bytes(const V4Config& config, uint32_t max_chunk);
  // Bytes of one snapshot's state (KvSnapshot::state).
  static size_t snapshot_bytes(const V4Config& config, const KvLayout& layout);

 private:
  float* slot_ring(float* state, uint32_t slot, uint64_t rows) const;

  PagedKvCache& cache_;
  uint32_t head_dim_, max_chunk_, window_;
  uint64_t ring_rows_;
  uint64_t n_past_ = 0;
  std::vector<PageId> pages_;
  std::unique_ptr<DeviceBuffer> state_;
};

}  // namespace v4
