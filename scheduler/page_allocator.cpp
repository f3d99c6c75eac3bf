#include "scheduler/page_allocator.h"

#include <algorithm>
#include <cassert>
#include <functional>

namespace v4 {

PageAllocator::PageAllocator(uint32_t total_pages) : total_(total_pages), in_use_(total_pages) {
  free_.reserve(total_pages);
  for (uint32_t p = total_pages; p > 0; --p) free_.push_back(p - 1);
}

std::optional<PageId> PageAllocator::allocate() {
  if (free_.empty()) return std::nullopt;
  const PageId p = free_.back();
  free_.pop_back();
  in_use_[p] = true;
  return p;
}

void PageAllocator::release(PageId page) {
  assert(page < total_ && in_use_[page] && "double free of a KV page");
  in_use_[page] = false;
  free_.insert(std::upper_bound(free_.begin(), free_.end(), page, std::greater<PageId>()), page);
}

}  // namespace v4
