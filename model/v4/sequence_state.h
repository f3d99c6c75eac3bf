// Per-sequence decode state of the V4 forward (spec §4.1): per layer a raw KV window, compressed
// KV rows, indexer keys and the compressors' carry state. The forward reads and writes it only
// through KvStateStore, so a paged KV cache can implement the same interface;
// ContiguousKvState is the simple one-allocation-per-kind implementation.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace v4 {

struct V4Config;

// A compressor's streaming state (spec §3.4.3): `rows` slots of `width` values and scores.
// Ratio 4: 8 slots (0..3 the previous block, 4..7 the open one); ratio 128: 128 slots.
struct CompressorCarry {
  float* values = nullptr;
  float* scores = nullptr;
  uint32_t rows = 0;
  uint32_t width = 0;
};

class KvStateStore {
 public:
  virtual ~KvStateStore() = default;

  // Tokens already processed; the next token's position.
  virtual uint64_t n_past() const = 0;
  virtual void advance(uint64_t n_tokens) = 0;

  // Makes room for the raw rows of positions [n_past, n_past + n_new) while keeping the last
  // sliding_window - 1 rows before them readable.
  virtual Status reserve(uint64_t n_new) = 0;
  // Raw KV row (head_dim floats) of an absolute position inside the reserved window.
  virtual float* raw_row(uint32_t layer, uint64_t pos) = 0;

  virtual uint64_t compressed_count(uint32_t layer) const = 0;
  virtual float* append_compressed_row(uint32_t layer) = 0;
  virtual const float* compressed_row(uint32_t layer, uint64_t index) const = 0;

  virtual uint64_t indexer_key_count(uint32_t layer) const = 0;
  virtual float* append_indexer_key(uint32_t layer) = 0;
  virtual const float* indexer_key(uint32_t layer, uint64_t index) const = 0;

  // `indexer` selects the lightning indexer's own compressor (ratio-4 layers).
  virtual CompressorCarry compressor_carry(uint32_t layer, bool indexer) = 0;
};

// Layer slots: the main layers 0..n_layer-1, then (with_mtp) the MTP block at index n_layer.
class ContiguousKvState final : public KvStateStore {
 public:
  ContiguousKvState(const V4Config& config, bool with_mtp = false);

  uint64_t n_past() const override { return n_past_; }
  void advance(uint64_t n_tokens) override { n_past_ += n_tokens; }
  Status reserve(uint64_t n_new) override;
  float* raw_row(uint32_t layer, uint64_t pos) override;
  uint64_t compressed_count(uint32_t layer) const override;
  float* append_compressed_row(uint32_t layer) override;
  const float* compressed_row(uint32_t layer, uint64_t index) const override;
  uint64_t indexer_key_count(uint32_t layer) const override;
  float* append_indexer_key(uint32_t layer) override;
  const float* indexer_key(uint32_t layer, uint64_t index) const override;
  CompressorCarry compressor_carry(uint32_t layer, bool indexer) override;

 private:
  struct Carry {
    std::vector<float> values, scores;
    uint32_t rows = 0, width = 0;
  };
  struct Layer {
    std::vector<float> raw;  // ring of ring_capacity_ rows
    std::vector<float> compressed;
    std::vector<float> indexer_keys;
    Carry carry, indexer_carry;
  };
  static Carry make_carry(uint32_t ratio, uint32_t width);

  uint32_t head_dim_, indexer_head_dim_, window_;
  uint64_t ring_capacity_;
  uint64_t n_past_ = 0;
  std::vector<Layer> layers_;
};

}  // namespace v4
