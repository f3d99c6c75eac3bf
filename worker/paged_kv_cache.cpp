#include "worker/paged_kv_cache.h"

#include <string>

#include "model/v4/kv_layout.h"

namespace v4 {

size_t PagedKvCache::page_bytes(const V4Config& c, uint32_t page_tokens, KvStorage storage) {
  return make_kv_layout(c, storage, page_tokens, false).format.page_bytes;
}

PagedKvCache::PagedKvCache(const V4Config& c, const PagedKvOptions& options, Backend& backend)
    : options_(options),
      backend_(backend),
      layout_(make_kv_layout(c, options.storage, options.page_tokens, false)) {
  const size_t bytes = layout_.format.page_bytes * options.total_pages;
  if (bytes > 0) pages_ = backend.allocate(bytes);
}

Status PagedKvCache::read_page(PageId page, uint8_t* host) const {
  if (page >= total_pages()) return Status::error("page " + std::to_string(page) + " out of range");
  return backend_.read_back(pages() + size_t{page} * page_bytes(), host, page_bytes());
}

Status PagedKvCache::write_page(PageId page, const uint8_t* host) {
  if (page >= total_pages()) return Status::error("page " + std::to_string(page) + " out of range");
  const Tensor pool = Tensor::contiguous(
      pages_.get(), 0, GgmlType::I8, {static_cast<int64_t>(page_bytes() * total_pages()), 1, 1, 1});
  return backend_.copy_to_device(host, pool, size_t{page} * page_bytes(), page_bytes());
}

}  // namespace v4
