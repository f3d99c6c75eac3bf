// The KV layout of a V4 model: page sizes against spec §4.2's table, and the carry areas.
#include "model/v4/kv_layout.h"

#include <gtest/gtest.h>

#include <cmath>

#include "model/synthetic/synthetic_model.h"
#include "model/v4/v4_config.h"

namespace v4 {
namespace {

// Spec §4.2's table of bytes per token of context for the real model's layer shapes (43
// layers: 2 uncompressed, 21 ratio-4, 20 ratio-128): fp32 13,760, F16 6,880, FP8 main + FP4
// indexer 3,514.25. Pages are whole multiples of 128 tokens, so the page size divided by its
// tokens must give the table exactly.
TEST(KvLayout, PagesOfTheRealShapeMatchTheSpecsBytesPerToken) {
  const Result<V4Config> c = synthetic_preset("flash-shape", 43);
  ASSERT_TRUE(c) << c.status().message();
  const struct {
    KvStorage storage;
    double bytes_per_token;
  } table[] = {{KvStorage::kF32, 13760.0}, {KvStorage::kF16, 6880.0}, {KvStorage::kFp8, 3514.25}};
  for (const auto& row : table) {
    const double page =
        static_cast<double>(make_kv_layout(*c, row.storage, 256, false).format.page_bytes);
    EXPECT_EQ(page / 256.0, row.bytes_per_token) << kv_storage_name(row.storage);
  }
}

// Carry areas do not overlap, cover the whole area, and start as zero values with −∞ scores.
TEST(KvLayout, CarryAreasTileTheSlot) {
  const Result<V4Config> c = synthetic_preset("flash-shape", 43);
  ASSERT_TRUE(c) << c.status().message();
  const KvLayout l = make_kv_layout(*c, KvStorage::kF32, 256, true);
  ASSERT_EQ(l.layers.size(), c->n_layer + 1u);
  EXPECT_EQ(l.layers.back().ratio, 0u);  // the MTP block: raw window only
  size_t next = 0;
  for (uint32_t il = 0; il < l.layers.size(); ++il) {
    const KvLayerAddress& a = l.layers[il];
    EXPECT_EQ(a.raw_slot, il);
    if (a.ratio == 0) continue;
    EXPECT_EQ(a.carry_offset, next);
    const size_t n = size_t{a.carry_rows} * a.carry_width;
    EXPECT_EQ(l.initial_carry[a.carry_offset], 0.0f);
    EXPECT_TRUE(std::isinf(l.initial_carry[a.carry_offset + n]));
    next += 2 * n;
    if (a.ratio != 4) continue;
    EXPECT_EQ(a.indexer_carry_offset, next);
    next += 2 * size_t{8} * a.indexer_carry_width;
  }
  EXPECT_EQ(next, l.carry_floats);
  EXPECT_EQ(l.initial_carry.size(), l.carry_floats);
}

}  // namespace
}  // namespace v4
