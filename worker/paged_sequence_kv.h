// One sequence's view of the paged KV cache, as the KvStateStore the forward reads and writes
// (spec §4.1). Compressed rows and indexer keys go to the pages of the sequence's block table;
// the raw window is a per-sequence ring of sliding_window + max_chunk rows (§4.4: "a ring of 128
// rows plus room for the current prefill chunk") and the compressor carry state is per sequence.
//
// Rows appended during a forward are staged in F32 and encoded into their pages by advance(),
// once the step's attention is done. Reads of encoded (or staged, for F16/FP8) rows decode into a
// per-thread ring of `decode_rows` rows: the forward holds at most one attention call's rows at a
// time (≤ max(indexer_top_k, context/128) compressed rows), so pointers stay valid while used,
// and a staged row reads exactly as it will once encoded, keeping results chunking-invariant.
#pragma once

#include <cstdint>
#include <vector>

#include "model/v4/sequence_state.h"
#include "model/v4/v4_config.h"
#include "worker/paged_kv_cache.h"

namespace v4 {

// What a sequence resumed at a page boundary needs besides the rows in its shared pages (spec
// §4.4: the carry state is not derivable from cached rows): per layer the raw rows of the last
// sliding_window positions, both compressors' carry slots, and the committed row counts.
struct KvSnapshot {
  struct Layer {
    std::vector<float> raw;  // positions max(0, n_past − window) .. n_past − 1, in order
    std::vector<float> values, scores, indexer_values, indexer_scores;
    uint64_t main_rows = 0, indexer_rows = 0;
  };
  uint64_t n_past = 0;
  std::vector<Layer> layers;
  size_t bytes() const;
};

class PagedSequenceKv final : public KvStateStore {
 public:
  // `max_chunk`: the most tokens one forward call may add; `decode_rows`: see above.
  PagedSequenceKv(const V4Config& config, PagedKvCache& cache, uint32_t max_chunk,
                  uint32_t decode_rows);

  // The block table for the coming step (the scheduler's, possibly grown).
  void set_pages(const std::vector<PageId>& pages) { pages_ = pages; }

  uint64_t n_past() const override { return n_past_; }
  void advance(uint64_t n_tokens) override;
  Status reserve(uint64_t n_new) override;
  float* raw_row(uint32_t layer, uint64_t pos) override;
  uint64_t compressed_count(uint32_t layer) const override;
  float* append_compressed_row(uint32_t layer) override;
  const float* compressed_row(uint32_t layer, uint64_t index) const override;
  uint64_t indexer_key_count(uint32_t layer) const override;
  float* append_indexer_key(uint32_t layer) override;
  const float* indexer_key(uint32_t layer, uint64_t index) const override;
  CompressorCarry compressor_carry(uint32_t layer, bool indexer) override;

  // The state at n_past, taken after advance() (nothing staged). restore() makes a fresh
  // sequence continue from it bit-exactly, its rows read from the shared pages of set_pages().
  KvSnapshot snapshot() const;
  void restore(const KvSnapshot& snapshot);

  // Fixed bytes a sequence holds outside pages (raw ring and carry state), for the budget.
  static size_t fixed_bytes(const V4Config& config, uint32_t max_chunk);

 private:
  struct Carry {
    std::vector<float> values, scores;
    uint32_t rows = 0, width = 0;
  };
  // Committed rows live in pages; staged rows (appended this step) in `staged`, F32.
  struct RowStore {
    uint64_t committed = 0;
    std::vector<float> staged;
  };
  struct Layer {
    uint32_t ratio = 0;
    std::vector<float> raw;
    RowStore main, indexer;
    Carry carry, indexer_carry;
  };

  float* append(RowStore& rows, uint32_t width);
  const float* read_row(uint32_t layer, uint64_t index, bool indexer) const;
  void commit(uint32_t layer, bool indexer);
  // Page and row inside it of compressed row `index` of a ratio-r store.
  PageId page_of(uint64_t index, uint32_t ratio) const;
  uint32_t row_in_page(uint64_t index, uint32_t ratio) const;

  PagedKvCache& cache_;
  uint32_t head_dim_, indexer_dim_, max_chunk_, decode_rows_, window_;
  uint64_t ring_rows_;
  uint64_t n_past_ = 0;
  std::vector<PageId> pages_;
  std::vector<Layer> layers_;
};

}  // namespace v4
