#include "worker/paged_sequence_kv.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <string>

namespace v4 {
namespace {

// The per-thread ring decoded rows are returned from (see the header). Each thread runs one
// attention call at a time, and one call reads at most `rows` compressed rows.
float* decode_slot(uint32_t rows, uint32_t width) {
  struct Ring {
    std::vector<float> buffer;
    uint32_t rows = 0, width = 0, next = 0;
  };
  thread_local Ring ring;
  if (ring.rows < rows || ring.width < width) {
    ring.rows = std::max(ring.rows, rows);
    ring.width = std::max(ring.width, width);
    ring.buffer.assign(size_t{ring.rows} * ring.width, 0.0f);
    ring.next = 0;
  }
  float* slot = &ring.buffer[size_t{ring.next} * ring.width];
  ring.next = (ring.next + 1) % ring.rows;
  return slot;
}

}  // namespace

size_t PagedSequenceKv::fixed_bytes(const V4Config& c, uint32_t max_chunk) {
  size_t floats = 0;
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    floats += size_t{c.sliding_window + max_chunk} * c.head_dim;
    const uint32_t r = c.compress_ratios[il];
    if (r != 0) floats += 2 * size_t{r == 4 ? 8u : r} * c.compressor_width(il);
    if (r == 4) floats += 2 * size_t{8} * 2 * c.indexer_head_dim;
  }
  return floats * sizeof(float);
}

PagedSequenceKv::PagedSequenceKv(const V4Config& c, PagedKvCache& cache, uint32_t max_chunk,
                                 uint32_t decode_rows)
    : cache_(cache),
      head_dim_(c.head_dim),
      indexer_dim_(c.indexer_head_dim),
      max_chunk_(max_chunk),
      decode_rows_(decode_rows),
      window_(c.sliding_window),
      ring_rows_(uint64_t{c.sliding_window} + max_chunk) {
  layers_.resize(c.n_layer);
  auto make_carry = [](uint32_t ratio, uint32_t width) {
    Carry k;
    // Ratio 4 keeps the previous block beside the open one (overlapping windows, spec §3.4.3).
    k.rows = ratio == 4 ? 8 : ratio;
    k.width = width;
    k.values.assign(size_t{k.rows} * width, 0.0f);
    k.scores.assign(size_t{k.rows} * width, -std::numeric_limits<float>::infinity());
    return k;
  };
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    Layer& l = layers_[il];
    l.ratio = c.compress_ratios[il];
    l.raw.assign(ring_rows_ * head_dim_, 0.0f);
    if (l.ratio != 0) l.carry = make_carry(l.ratio, c.compressor_width(il));
    if (l.ratio == 4) l.indexer_carry = make_carry(4, 2 * indexer_dim_);
  }
}

Status PagedSequenceKv::reserve(uint64_t n_new) {
  if (n_new > max_chunk_) {
    return Status::error("paged KV: a chunk of " + std::to_string(n_new) +
                         " tokens exceeds the ring's room of " + std::to_string(max_chunk_));
  }
  if (uint64_t{pages_.size()} * cache_.page_tokens() < n_past_ + n_new) {
    return Status::error("paged KV: block table of " + std::to_string(pages_.size()) +
                         " pages cannot hold " + std::to_string(n_past_ + n_new) + " tokens");
  }
  return Status::ok();
}

float* PagedSequenceKv::raw_row(uint32_t layer, uint64_t pos) {
  return &layers_[layer].raw[(pos % ring_rows_) * head_dim_];
}

PageId PagedSequenceKv::page_of(uint64_t index, uint32_t ratio) const {
  return pages_[index * ratio / cache_.page_tokens()];
}

uint32_t PagedSequenceKv::row_in_page(uint64_t index, uint32_t ratio) const {
  return static_cast<uint32_t>(index * ratio % cache_.page_tokens() / ratio);
}

float* PagedSequenceKv::append(RowStore& rows, uint32_t width) {
  rows.staged.resize(rows.staged.size() + width);
  return &rows.staged[rows.staged.size() - width];
}

uint64_t PagedSequenceKv::compressed_count(uint32_t layer) const {
  const RowStore& m = layers_[layer].main;
  return m.committed + m.staged.size() / head_dim_;
}

float* PagedSequenceKv::append_compressed_row(uint32_t layer) {
  return append(layers_[layer].main, head_dim_);
}

uint64_t PagedSequenceKv::indexer_key_count(uint32_t layer) const {
  const RowStore& k = layers_[layer].indexer;
  return k.committed + k.staged.size() / indexer_dim_;
}

float* PagedSequenceKv::append_indexer_key(uint32_t layer) {
  return append(layers_[layer].indexer, indexer_dim_);
}

const float* PagedSequenceKv::compressed_row(uint32_t layer, uint64_t index) const {
  return read_row(layer, index, false);
}

const float* PagedSequenceKv::indexer_key(uint32_t layer, uint64_t index) const {
  return read_row(layer, index, true);
}

const float* PagedSequenceKv::read_row(uint32_t layer, uint64_t index, bool indexer) const {
  const Layer& l = layers_[layer];
  const RowStore& rows = indexer ? l.indexer : l.main;
  const uint32_t width = indexer ? indexer_dim_ : head_dim_;
  const KvStorage storage = cache_.storage();
  const KvRowShape& shape = cache_.shape();
  if (index >= rows.committed) {
    const float* staged = &rows.staged[(index - rows.committed) * width];
    if (storage == KvStorage::kF32) return staged;
    // Read a staged row through the encoding it will be stored in (chunking invariance).
    thread_local std::vector<uint8_t> bytes;
    bytes.resize(indexer ? cache_.indexer_row_bytes() : cache_.main_row_bytes());
    float* out = decode_slot(decode_rows_, std::max(head_dim_, indexer_dim_));
    if (indexer) {
      encode_indexer_row(storage, shape, staged, bytes.data());
      decode_indexer_row(storage, shape, bytes.data(), out);
    } else {
      encode_main_row(storage, shape, staged, bytes.data());
      decode_main_row(storage, shape, bytes.data(), out);
    }
    return out;
  }
  const PageId page = page_of(index, l.ratio);
  const uint32_t row = row_in_page(index, l.ratio);
  const uint8_t* bytes =
      indexer ? cache_.indexer_row(page, layer, row) : cache_.main_row(page, layer, row);
  if (storage == KvStorage::kF32) return reinterpret_cast<const float*>(bytes);
  float* out = decode_slot(decode_rows_, std::max(head_dim_, indexer_dim_));
  if (indexer) {
    decode_indexer_row(storage, shape, bytes, out);
  } else {
    decode_main_row(storage, shape, bytes, out);
  }
  return out;
}

void PagedSequenceKv::commit(uint32_t layer, bool indexer) {
  Layer& l = layers_[layer];
  RowStore& rows = indexer ? l.indexer : l.main;
  const uint32_t width = indexer ? indexer_dim_ : head_dim_;
  const uint64_t n = rows.staged.size() / width;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t index = rows.committed + i;
    const PageId page = page_of(index, l.ratio);
    const uint32_t row = row_in_page(index, l.ratio);
    const float* src = &rows.staged[i * width];
    if (indexer) {
      encode_indexer_row(cache_.storage(), cache_.shape(), src,
                         cache_.indexer_row(page, layer, row));
    } else {
      encode_main_row(cache_.storage(), cache_.shape(), src, cache_.main_row(page, layer, row));
    }
  }
  rows.committed += n;
  rows.staged.clear();
}

void PagedSequenceKv::advance(uint64_t n_tokens) {
  for (uint32_t il = 0; il < layers_.size(); ++il) {
    if (layers_[il].ratio == 0) continue;
    commit(il, false);
    if (layers_[il].ratio == 4) commit(il, true);
  }
  n_past_ += n_tokens;
}

CompressorCarry PagedSequenceKv::compressor_carry(uint32_t layer, bool indexer) {
  Carry& c = indexer ? layers_[layer].indexer_carry : layers_[layer].carry;
  return {c.values.data(), c.scores.data(), c.rows, c.width};
}

size_t KvSnapshot::bytes() const {
  size_t floats = 0;
  for (const Layer& l : layers) {
    floats += l.raw.size() + l.values.size() + l.scores.size() + l.indexer_values.size() +
              l.indexer_scores.size();
  }
  return floats * sizeof(float) + layers.size() * sizeof(Layer);
}

KvSnapshot PagedSequenceKv::snapshot() const {
  KvSnapshot s;
  s.n_past = n_past_;
  s.layers.resize(layers_.size());
  const uint64_t first = n_past_ > window_ ? n_past_ - window_ : 0;
  for (size_t il = 0; il < layers_.size(); ++il) {
    const Layer& l = layers_[il];
    KvSnapshot::Layer& o = s.layers[il];
    assert(l.main.staged.empty() && l.indexer.staged.empty() && "snapshot before advance()");
    o.raw.reserve((n_past_ - first) * head_dim_);
    for (uint64_t pos = first; pos < n_past_; ++pos) {
      const float* row = &l.raw[(pos % ring_rows_) * head_dim_];
      o.raw.insert(o.raw.end(), row, row + head_dim_);
    }
    o.values = l.carry.values;
    o.scores = l.carry.scores;
    o.indexer_values = l.indexer_carry.values;
    o.indexer_scores = l.indexer_carry.scores;
    o.main_rows = l.main.committed;
    o.indexer_rows = l.indexer.committed;
  }
  return s;
}

void PagedSequenceKv::restore(const KvSnapshot& s) {
  assert(n_past_ == 0 && s.layers.size() == layers_.size());
  const uint64_t first = s.n_past > window_ ? s.n_past - window_ : 0;
  for (size_t il = 0; il < layers_.size(); ++il) {
    Layer& l = layers_[il];
    const KvSnapshot::Layer& o = s.layers[il];
    for (uint64_t pos = first; pos < s.n_past; ++pos) {
      std::copy_n(&o.raw[(pos - first) * head_dim_], head_dim_,
                  &l.raw[(pos % ring_rows_) * head_dim_]);
    }
    l.carry.values = o.values;
    l.carry.scores = o.scores;
    l.indexer_carry.values = o.indexer_values;
    l.indexer_carry.scores = o.indexer_scores;
    l.main = {o.main_rows, {}};
    l.indexer = {o.indexer_rows, {}};
  }
  n_past_ = s.n_past;
}

}  // namespace v4
