// Paged-KV accounting (spec §4.4): a fixed budget of page ids, handed out and taken back. Only
// numbers live here; the bytes of a page belong to the worker's PagedKvCache.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "scheduler/step_plan.h"

namespace v4 {

class PageAllocator {
 public:
  explicit PageAllocator(uint32_t total_pages);

  uint32_t total() const { return total_; }
  uint32_t free_count() const { return static_cast<uint32_t>(free_.size()); }
  uint32_t used_count() const { return total_ - free_count(); }

  // Lowest free id first, so page ids in tests are predictable.
  std::optional<PageId> allocate();
  void release(PageId page);

 private:
  uint32_t total_;
  std::vector<PageId> free_;  // kept sorted descending: back() is the lowest id
  std::vector<bool> in_use_;
};

}  // namespace v4
