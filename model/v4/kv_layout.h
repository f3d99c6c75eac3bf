// The KV layout of a V4 model (kv_view.h) under one page format, and the copies that move a
// sequence's window rows between state slots (prefix snapshots, growing rings).
#pragma once

#include <cstdint>

#include "model/backend/backend.h"
#include "model/backend/kv_view.h"

namespace v4 {

struct V4Config;

// Pages of `page_tokens` positions (a multiple of 128) holding, per ratio-r layer,
// page_tokens/r main rows (and for r = 4 as many indexer keys), in `storage`; carry areas for
// every compressor; ring slots for the main layers and, with_mtp, the MTP block.
KvLayout make_kv_layout(const V4Config& config, KvStorage storage, uint32_t page_tokens,
                        bool with_mtp);

// One ring of raw rows: position p sits at row (p − origin) mod rows of `base`.
struct RingRows {
  float* base = nullptr;
  uint64_t rows = 0;
  uint64_t origin = 0;
};

// Copies the rows of positions [first, last) from one ring to another, `width` floats each, in
// as few contiguous device copies as the two wrap points allow.
void copy_ring_rows(Backend& backend, RingRows from, RingRows to, uint64_t first, uint64_t last,
                    uint32_t width);

}  // namespace v4
