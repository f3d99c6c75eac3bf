// Storage of the growing part of the V4 decode state (spec §4.1–§4.2): compressed main rows and
// indexer keys of every compressed layer live in fixed-size pages of `page_tokens` positions, a
// multiple of 128 so no compressed row straddles a page (§4.4). A page holds, per ratio-r layer,
// page_tokens/r main rows (and for r = 4 as many indexer keys). Page ids come from the
// scheduler's block tables; this class owns only bytes and their layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/v4/v4_config.h"
#include "scheduler/step_plan.h"
#include "worker/kv_row_codec.h"

namespace v4 {

struct PagedKvOptions {
  uint32_t page_tokens = 256;
  uint32_t total_pages = 0;
  KvStorage storage = KvStorage::kF32;
};

class PagedKvCache {
 public:
  PagedKvCache(const V4Config& config, const PagedKvOptions& options);

  // Bytes one page takes for this model and storage (the unit of the --kv-memory budget).
  static size_t page_bytes(const V4Config& config, uint32_t page_tokens, KvStorage storage);

  uint8_t* main_row(PageId page, uint32_t layer, uint32_t row_in_page);
  const uint8_t* main_row(PageId page, uint32_t layer, uint32_t row_in_page) const;
  uint8_t* indexer_row(PageId page, uint32_t layer, uint32_t row_in_page);
  const uint8_t* indexer_row(PageId page, uint32_t layer, uint32_t row_in_page) const;

  const KvRowShape& shape() const { return shape_; }
  KvStorage storage() const { return options_.storage; }
  uint32_t page_tokens() const { return options_.page_tokens; }
  uint32_t total_pages() const { return options_.total_pages; }
  size_t page_bytes() const { return page_bytes_; }
  size_t main_row_bytes() const { return main_bytes_; }
  size_t indexer_row_bytes() const { return indexer_bytes_; }

 private:
  struct LayerRegion {
    uint32_t ratio = 0;
    size_t main_offset = 0;
    size_t indexer_offset = 0;
  };

  PagedKvOptions options_;
  KvRowShape shape_;
  size_t main_bytes_ = 0, indexer_bytes_ = 0, page_bytes_ = 0;
  std::vector<LayerRegion> layers_;
  std::vector<uint8_t> arena_;  // total_pages × page_bytes_
};

}  // namespace v4
