#include "worker/paged_kv_cache.h"

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

}  // namespace v4
