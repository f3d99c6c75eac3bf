#include "worker/paged_kv_cache.h"

#include <cassert>

namespace v4 {
namespace {

KvRowShape row_shape(const V4Config& c) { return {c.head_dim, c.rope_dim, c.indexer_head_dim}; }

}  // namespace

size_t PagedKvCache::page_bytes(const V4Config& c, uint32_t page_tokens, KvStorage storage) {
  const KvRowShape s = row_shape(c);
  size_t bytes = 0;
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    const uint32_t r = c.compress_ratios[il];
    if (r == 0) continue;
    bytes += size_t{page_tokens / r} * v4::main_row_bytes(storage, s);
    if (r == 4) bytes += size_t{page_tokens / r} * v4::indexer_row_bytes(storage, s);
  }
  return bytes;
}

PagedKvCache::PagedKvCache(const V4Config& c, const PagedKvOptions& options)
    : options_(options), shape_(row_shape(c)) {
  assert(options.page_tokens % 128 == 0 && "pages must hold whole ratio-128 rows (spec §4.4)");
  main_bytes_ = v4::main_row_bytes(options.storage, shape_);
  indexer_bytes_ = v4::indexer_row_bytes(options.storage, shape_);
  layers_.resize(c.n_layer);
  size_t offset = 0;
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    LayerRegion& l = layers_[il];
    l.ratio = c.compress_ratios[il];
    if (l.ratio == 0) continue;
    const size_t rows = options.page_tokens / l.ratio;
    l.main_offset = offset;
    offset += rows * main_bytes_;
    if (l.ratio != 4) continue;
    l.indexer_offset = offset;
    offset += rows * indexer_bytes_;
  }
  page_bytes_ = offset;
  arena_.resize(page_bytes_ * options.total_pages);
}

uint8_t* PagedKvCache::main_row(PageId page, uint32_t layer, uint32_t row_in_page) {
  assert(page < options_.total_pages && layers_[layer].ratio != 0);
  return &arena_[page * page_bytes_ + layers_[layer].main_offset + row_in_page * main_bytes_];
}

const uint8_t* PagedKvCache::main_row(PageId page, uint32_t layer, uint32_t row_in_page) const {
  return const_cast<PagedKvCache*>(this)->main_row(page, layer, row_in_page);
}

uint8_t* PagedKvCache::indexer_row(PageId page, uint32_t layer, uint32_t row_in_page) {
  assert(page < options_.total_pages && layers_[layer].ratio == 4);
  return &arena_[page * page_bytes_ + layers_[layer].indexer_offset + row_in_page * indexer_bytes_];
}

const uint8_t* PagedKvCache::indexer_row(PageId page, uint32_t layer, uint32_t row_in_page) const {
  return const_cast<PagedKvCache*>(this)->indexer_row(page, layer, row_in_page);
}

}  // namespace v4
