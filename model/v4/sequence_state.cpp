#include "model/v4/sequence_state.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "model/v4/v4_config.h"

namespace v4 {

ContiguousKvState::Carry ContiguousKvState::make_carry(uint32_t ratio, uint32_t width) {
  Carry c;
  // Ratio 4 keeps the previous block beside the open one (overlapping windows, spec §3.4.3).
  c.rows = ratio == 4 ? 8 : ratio;
  c.width = width;
  c.values.assign(size_t{c.rows} * width, 0.0f);
  c.scores.assign(size_t{c.rows} * width, -std::numeric_limits<float>::infinity());
  return c;
}

ContiguousKvState::ContiguousKvState(const V4Config& c, bool with_mtp)
    : head_dim_(c.head_dim),
      indexer_head_dim_(c.indexer_head_dim),
      window_(c.sliding_window),
      ring_capacity_(c.sliding_window) {
  layers_.resize(c.n_layer + (with_mtp ? 1 : 0));
  for (uint32_t il = 0; il < layers_.size(); ++il) {
    Layer& l = layers_[il];
    l.raw.assign(ring_capacity_ * head_dim_, 0.0f);
    const uint32_t ratio = il < c.n_layer ? c.compress_ratios[il] : 0;
    if (ratio != 0) l.carry = make_carry(ratio, c.compressor_width(il));
    if (ratio == 4) l.indexer_carry = make_carry(4, 2 * indexer_head_dim_);
  }
}

Status ContiguousKvState::reserve(uint64_t n_new) {
  const uint64_t need = window_ + n_new;
  if (need <= ring_capacity_) return Status::ok();
  // Re-lay the live window into a larger ring (slot = position mod capacity).
  const uint64_t first = n_past_ > window_ ? n_past_ - window_ : 0;
  for (Layer& l : layers_) {
    std::vector<float> ring(need * head_dim_, 0.0f);
    for (uint64_t pos = first; pos < n_past_; ++pos) {
      std::memcpy(&ring[(pos % need) * head_dim_], &l.raw[(pos % ring_capacity_) * head_dim_],
                  head_dim_ * sizeof(float));
    }
    l.raw = std::move(ring);
  }
  ring_capacity_ = need;
  return Status::ok();
}

float* ContiguousKvState::raw_row(uint32_t layer, uint64_t pos) {
  return &layers_[layer].raw[(pos % ring_capacity_) * head_dim_];
}

uint64_t ContiguousKvState::compressed_count(uint32_t layer) const {
  return layers_[layer].compressed.size() / head_dim_;
}

float* ContiguousKvState::append_compressed_row(uint32_t layer) {
  std::vector<float>& v = layers_[layer].compressed;
  v.resize(v.size() + head_dim_);
  return &v[v.size() - head_dim_];
}

const float* ContiguousKvState::compressed_row(uint32_t layer, uint64_t index) const {
  return &layers_[layer].compressed[index * head_dim_];
}

uint64_t ContiguousKvState::indexer_key_count(uint32_t layer) const {
  return layers_[layer].indexer_keys.size() / indexer_head_dim_;
}

float* ContiguousKvState::append_indexer_key(uint32_t layer) {
  std::vector<float>& v = layers_[layer].indexer_keys;
  v.resize(v.size() + indexer_head_dim_);
  return &v[v.size() - indexer_head_dim_];
}

const float* ContiguousKvState::indexer_key(uint32_t layer, uint64_t index) const {
  return &layers_[layer].indexer_keys[index * indexer_head_dim_];
}

CompressorCarry ContiguousKvState::compressor_carry(uint32_t layer, bool indexer) {
  Carry& c = indexer ? layers_[layer].indexer_carry : layers_[layer].carry;
  return {c.values.data(), c.scores.data(), c.rows, c.width};
}

}  // namespace v4
