// Storage of the growing part of the V4 decode state (spec §4.1–§4.2): compressed main rows and
// indexer keys of every compressed layer live in fixed-size pages of `page_tokens` positions, a
// multiple of 128 so no compressed row straddles a page (§4.4). A page holds, per ratio-r layer,
// page_tokens/r main rows (and for r = 4 as many indexer keys). The pages are one buffer on the
// backend's device; page ids come from the scheduler's block tables, and the backend's KV ops
// address the pages through them. This class owns only the bytes and their layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "model/backend/backend.h"
#include "model/backend/kv_view.h"
#include "model/v4/v4_config.h"
#include "scheduler/step_plan.h"

namespace v4 {

struct PagedKvOptions {
  uint32_t page_tokens = 256;
  uint32_t total_pages = 0;
  KvStorage storage = KvStorage::kF32;
};

class PagedKvCache {
 public:
  PagedKvCache(const V4Config& config, const PagedKvOptions& options, Backend& backend);

  // Bytes one page takes for this model and storage (the unit of the --kv-memory budget).
  static size_t page_bytes(const V4Config& config, uint32_t page_tokens, KvStorage storage);

  Backend& backend() const { return backend_; }
  const KvLayout& layout() const { return layout_; }
  // Base of the page pool on the device.
  uint8_t* pages() const { return pages_ ? static_cast<uint8_t*>(pages_->data()) : nullptr; }
  KvStorage storage() const { return options_.storage; }
  uint32_t page_tokens() const { return options_.page_tokens; }
  uint32_t total_pages() const { return options_.total_pages; }
  size_t page_bytes() const { return layout_.format.page_bytes; }

  // The bytes of one page to or from host memory (the prefix pages' disk store), at the step's
  // edge: nothing may be writing the page.
  Status read_page(PageId page, uint8_t* host) const;
  Status write_page(PageId page, const uint8_t* host);

 private:
  PagedKvOptions options_;
  Backend& backend_;
  KvLayout layout_;
  std::unique_ptr<DeviceBuffer> pages_;  // total_pages × page_bytes
};

}  // namespace v4
