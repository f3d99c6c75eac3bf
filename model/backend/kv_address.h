// Address arithmetic of the KV layout (kv_view.h), shared by every backend's KV ops: which page
// and byte a compressed row or indexer key of a sequence sits at, and where a raw row sits in
// the sequence's window ring.
#pragma once

#include <cstdint>

#include "core/hd.h"
#include "model/backend/kv_view.h"

namespace v4 {

// Compressed row `index` of a ratio-`ratio` layer covers positions index·ratio .. and so sits in
// the page of those positions (rows never straddle pages: page_tokens is a multiple of 128).
V4_HD inline uint8_t* kv_main_row(const KvPageFormat& f, const KvLayerAddress& l,
                                  const KvSequenceView& s, uint64_t index) {
  const uint64_t first_pos = index * l.ratio;
  const uint64_t page = s.block_table[first_pos / f.page_tokens];
  const uint64_t row = first_pos % f.page_tokens / l.ratio;
  return s.pages + page * f.page_bytes + l.main_offset + row * f.main_row_bytes;
}

// Indexer key `index` of a ratio-4 layer.
V4_HD inline uint8_t* kv_indexer_row(const KvPageFormat& f, const KvLayerAddress& l,
                                     const KvSequenceView& s, uint64_t index) {
  const uint64_t first_pos = index * 4;
  const uint64_t page = s.block_table[first_pos / f.page_tokens];
  const uint64_t row = first_pos % f.page_tokens / 4;
  return s.pages + page * f.page_bytes + l.indexer_offset + row * f.indexer_row_bytes;
}

// The raw row of position `pos` in ring `slot` of a sequence with head_dim-wide rows.
V4_HD inline float* kv_raw_row(const KvSequenceView& s, uint32_t slot, uint32_t head_dim,
                               uint64_t pos) {
  return s.raw + (uint64_t{slot} * s.ring_rows + pos % s.ring_rows) * head_dim;
}

}  // namespace v4
