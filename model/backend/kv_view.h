// Where the V4 decode state of a step's sequences lives on the backend's device (spec §4.1–§4.4),
// in the terms the attention ops read it: compressed main rows and indexer keys in fixed-size
// pages addressed through each sequence's block table (as vLLM's paged attention does), and a
// per-sequence state slot holding the compressors' carry and the raw sliding-window ring.
// The counts need no storage: a ratio-r layer has floor(n/r) compressed rows after n tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/backend/kv_row_codec.h"

namespace v4 {

// The encoding and size of a page pool's rows (spec §4.3) and of its pages.
struct KvPageFormat {
  KvStorage storage = KvStorage::kF32;
  KvRowShape shape;
  uint32_t page_tokens = 0;  // a multiple of 128: no compressed row straddles a page (§4.4)
  size_t page_bytes = 0;
  size_t main_row_bytes = 0;
  size_t indexer_row_bytes = 0;

  bool operator==(const KvPageFormat&) const = default;
};

// One layer's place in the pages and in a sequence's state slot.
struct KvLayerAddress {
  uint32_t ratio = 0;         // 0 (window only), 4 or 128
  size_t main_offset = 0;     // bytes into a page: page_tokens/ratio main rows
  size_t indexer_offset = 0;  // bytes into a page: as many indexer keys (ratio 4)
  uint32_t raw_slot = 0;      // which ring of the slot's raw rings
  size_t carry_offset = 0;    // floats into the carry area: values then scores
  uint32_t carry_rows = 0;    // 8 for ratio 4 (previous block beside the open one), else ratio
  uint32_t carry_width = 0;   // the compressor's projection width
  size_t indexer_carry_offset = 0;
  uint32_t indexer_carry_width = 0;

  bool operator==(const KvLayerAddress&) const = default;
};

// The whole layout of one model's state under one page format. Layer slots: the main layers,
// then (with MTP) the MTP block.
struct KvLayout {
  KvPageFormat format;
  std::vector<KvLayerAddress> layers;
  size_t carry_floats = 0;           // the carry area of one sequence
  std::vector<float> initial_carry;  // its starting values (zeros; scores −∞)

  // Floats of one sequence's state slot with rings of `ring_rows` rows.
  size_t state_floats(uint64_t ring_rows) const {
    return carry_floats + layers.size() * ring_rows * format.shape.head_dim;
  }
};

// One sequence's state, by device address.
struct KvSequenceView {
  uint8_t* pages = nullptr;               // the page pool its block table indexes
  const uint32_t* block_table = nullptr;  // page ids, one per page_tokens positions
  uint32_t n_pages = 0;
  float* carry = nullptr;  // the carry area (KvLayout::carry_floats)
  float* raw =
      nullptr;  // rings: slot s at raw + s·ring_rows·head_dim; position p at p mod ring_rows
  uint64_t ring_rows = 0;
};

// The token batch of one step as the KV ops see it, every array on the device. Tokens of one
// sequence are contiguous and in position order.
struct KvStep {
  const KvSequenceView* sequences = nullptr;
  const int64_t* sequence_begin = nullptr;  // n_sequences + 1 entries
  const uint32_t* sequence_of = nullptr;    // per token
  const uint64_t* positions = nullptr;      // per token
  int64_t n_sequences = 0;
  int64_t n_tokens = 0;
  // Host-side bounds for sizing scratch without reading the device arrays: one past the
  // largest position of the step, and the longest block table.
  uint64_t position_end = 0;
  uint32_t max_pages = 0;
};

// One compressor of a layer (spec §3.4.3) with its step inputs.
struct KvCompressor {
  uint32_t ratio = 0;
  uint32_t width = 0;           // per-token projection width (2·row for ratio 4)
  const float* ape = nullptr;   // [ratio][width] score bias
  const float* norm = nullptr;  // the pooled row's RMSNorm weight
  float rms_eps = 0.0f;
  const float* rope_freqs = nullptr;  // the compressed layers' YaRN frequencies
  const float* a = nullptr;           // [n_tokens][width] W_kv·h
  const float* g = nullptr;           // [n_tokens][width] W_gate·h
};

}  // namespace v4
