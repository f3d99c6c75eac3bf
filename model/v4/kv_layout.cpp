#include "model/v4/kv_layout.h"

#include <algorithm>
#include <cassert>
#include <limits>

#include "model/v4/v4_config.h"

namespace v4 {

KvLayout make_kv_layout(const V4Config& c, KvStorage storage, uint32_t page_tokens, bool with_mtp) {
  assert(page_tokens % 128 == 0 && "pages must hold whole ratio-128 rows (spec §4.4)");
  KvLayout l;
  KvPageFormat& f = l.format;
  f.storage = storage;
  f.shape = {c.head_dim, c.rope_dim, c.indexer_head_dim};
  f.page_tokens = page_tokens;
  f.main_row_bytes = main_row_bytes(storage, f.shape);
  f.indexer_row_bytes = indexer_row_bytes(storage, f.shape);
  l.layers.resize(c.n_layer + (with_mtp ? 1 : 0));
  size_t page_offset = 0, carry = 0;
  for (uint32_t il = 0; il < l.layers.size(); ++il) {
    KvLayerAddress& a = l.layers[il];
    a.raw_slot = il;
    // The MTP block attends over its raw window only (spec §3.7).
    a.ratio = il < c.n_layer ? c.compress_ratios[il] : 0;
    if (a.ratio == 0) continue;
    const size_t rows = page_tokens / a.ratio;
    a.main_offset = page_offset;
    page_offset += rows * f.main_row_bytes;
    // Ratio 4 keeps the previous block beside the open one (overlapping windows, §3.4.3).
    a.carry_rows = a.ratio == 4 ? 8 : a.ratio;
    a.carry_width = c.compressor_width(il);
    a.carry_offset = carry;
    carry += 2 * size_t{a.carry_rows} * a.carry_width;
    if (a.ratio != 4) continue;
    a.indexer_offset = page_offset;
    page_offset += rows * f.indexer_row_bytes;
    a.indexer_carry_width = 2 * c.indexer_head_dim;
    a.indexer_carry_offset = carry;
    carry += 2 * size_t{8} * a.indexer_carry_width;
  }
  f.page_bytes = page_offset;
  l.carry_floats = carry;
  // Fresh carries: zero values, −∞ scores (an absent candidate, spec §3.4.3).
  l.initial_carry.assign(carry, 0.0f);
  for (const KvLayerAddress& a : l.layers) {
    if (a.ratio == 0) continue;
    const size_t n = size_t{a.carry_rows} * a.carry_width;
    std::fill_n(&l.initial_carry[a.carry_offset + n], n, -std::numeric_limits<float>::infinity());
    if (a.ratio != 4) continue;
    const size_t m = size_t{8} * a.indexer_carry_width;
    std::fill_n(&l.initial_carry[a.indexer_carry_offset + m], m,
                -std::numeric_limits<float>::infinity());
  }
  return l;
}

void copy_ring_rows(Backend& backend, RingRows from, RingRows to, uint64_t first, uint64_t last,
                    uint32_t width) {
  for (uint64_t pos = first; pos < last;) {
    const uint64_t a = (pos - from.origin) % from.rows, b = (pos - to.origin) % to.rows;
    const uint64_t n = std::min({last - pos, from.rows - a, to.rows - b});
    backend.copy_on_device(from.base + a * width, to.base + b * width, n * width * sizeof(float));
    pos += n;
  }
}

}  // namespace v4
