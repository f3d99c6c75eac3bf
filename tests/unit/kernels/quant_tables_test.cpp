// kernels/cpu/quant_tables: the generated IQ/MXFP4 tables equal ggml's ggml-common.h (spec §6).
//
// Oracle: digests of the table initialisers in ggml's ggml-common.h. They were produced outside
// this repository, by a throwaway script (not committed; no ggml code is committed) that:
//   1. took ggml-org/ggml at commit d99724f2b141fed9e1a9f402213506c081433465, file
//      src/ggml-common.h (sha256 af255601767325f087313fa84b9435cb77aeec37df6b61b98d9ecc65f29fb4a0);
//      this is the upstream copy of llama.cpp's ggml/src/ggml-common.h. The ggml-org/llama.cpp
//      snapshot was too large to fetch, so its file (commit
//      01243c587feceaa5d6a6c2305535ef2f549c48b8) was read through a code index and compared:
//      identical text for kmask_iq2xs, ksigns_iq2xs, kvalues_fp4 and the first and last rows of
//      iq1s_grid, and every table boundary at the offset predicted from ggml's file (plus
//      llama.cpp's extra kvalues_iq2nl/iq3nl tables), i.e. tables of identical length;
//   2. cut each `GGML_TABLE_BEGIN(type, name, size) ... GGML_TABLE_END()` body, dropped `//`
//      comments and parsed every integer literal (regex -?(0x[0-9a-fA-F]+|\d+), base auto);
//   3. packed the values little-endian at the width of the declared C type (uint8_t, int8_t as
//      two's complement, uint64_t) and hashed the bytes with FNV-1a 64 (offset basis
//      0xcbf29ce484222325, prime 0x100000001b3).
// kvalues_mxfp4 is `#define kvalues_mxfp4 kvalues_fp4` in that file, so its digest is
// kvalues_fp4's. The other check, against gguf-py's own grid decoder, is
// tests/python/test_quant_tables.py.
#include "kernels/cpu/quant_tables.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <set>

#include "kernels/device/mxfp4_block.h"
#include "kernels/device/quant_dot.h"

namespace v4::kernels {
namespace {

// FNV-1a 64 over the table's bytes in little-endian element order (step 3 above).
template <class T, size_t N>
uint64_t fnv1a64(const T (&table)[N]) {
  static_assert(std::endian::native == std::endian::little, "digests assume little-endian bytes");
  uint64_t hash = 0xcbf29ce484222325ull;
  const auto* bytes = reinterpret_cast<const unsigned char*>(table);
  for (size_t i = 0; i < sizeof(table); ++i) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

TEST(QuantTables, DigestsEqualGgmlCommonH) {
  EXPECT_EQ(fnv1a64(kmask_iq2xs), 0x0af7003a53c25e16ull);
  EXPECT_EQ(fnv1a64(ksigns_iq2xs), 0xf19ba8f8c3292ba5ull);
  EXPECT_EQ(fnv1a64(iq2xxs_grid), 0xbb4ee025b5ac6e8eull);
  EXPECT_EQ(fnv1a64(iq2xs_grid), 0xc9b1ee61e79909bdull);
  EXPECT_EQ(fnv1a64(iq1s_grid), 0x6703ed863501ae2eull);
  EXPECT_EQ(fnv1a64(kvalues_mxfp4), 0x3f0e3c08af1e5eb5ull);
}

TEST(QuantTables, SizesEqualGgmlCommonH) {
  EXPECT_EQ(std::size(kmask_iq2xs), 8u);
  EXPECT_EQ(std::size(ksigns_iq2xs), 128u);
  EXPECT_EQ(std::size(iq2xxs_grid), 256u);
  EXPECT_EQ(std::size(iq2xs_grid), 512u);
  EXPECT_EQ(std::size(iq1s_grid), 2048u);  // NGRID_IQ1S
  EXPECT_EQ(std::size(kvalues_mxfp4), 16u);
}

// Structural facts from spec §6, independent of any source file: they localise a digest failure.
TEST(QuantTables, SignTableHasEvenParityInBit7) {
  for (int i = 0; i < 128; ++i) {
    EXPECT_EQ(ksigns_iq2xs[i] & 127, i);
    EXPECT_EQ(std::popcount(static_cast<unsigned>(ksigns_iq2xs[i])) % 2, 0) << "index " << i;
  }
  for (int j = 0; j < 8; ++j) EXPECT_EQ(kmask_iq2xs[j], 1u << j);
}

// The device computes the sign bytes instead of reading the table: the same byte for every index.
TEST(QuantTables, ComputedSignBytesAreTheTables) {
  for (uint32_t i = 0; i < 128; ++i) EXPECT_EQ(iq2_signs(i), ksigns_iq2xs[i]) << "index " << i;
}

template <size_t N>
void expect_rows_unique_with_bytes_in(const uint64_t (&grid)[N], const std::set<uint8_t>& allowed) {
  std::set<uint64_t> rows(std::begin(grid), std::end(grid));
  EXPECT_EQ(rows.size(), N) << "grid rows must be distinct";
  for (uint64_t row : grid) {
    for (int j = 0; j < 8; ++j) ASSERT_TRUE(allowed.count(static_cast<uint8_t>(row >> (8 * j))));
  }
}

TEST(QuantTables, GridsHoldOnlyTheirValueSetsAndDistinctRows) {
  expect_rows_unique_with_bytes_in(iq2xxs_grid, {0x08, 0x19, 0x2b});
  expect_rows_unique_with_bytes_in(iq2xs_grid, {0x08, 0x19, 0x2b});
  expect_rows_unique_with_bytes_in(iq1s_grid, {0xff, 0x00, 0x01});  // int8 −1, 0, +1
}

TEST(QuantTables, MxFp4ValuesAreDoubledE2M1) {
  const int8_t e2m1_doubled[8] = {0, 1, 2, 3, 4, 6, 8, 12};  // 2 × {0, .5, 1, 1.5, 2, 3, 4, 6}
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(kvalues_mxfp4[i], e2m1_doubled[i]);
    EXPECT_EQ(kvalues_mxfp4[i + 8], -e2m1_doubled[i]);  // sign bit is bit 3 of the nibble
  }
}

// The device's MXFP4 values in registers (kMxfp4ValueWords) are the table, and the byte selects
// that decode a block give, for every code byte at every place, the table's value of its low
// code at the byte's place and of its high code 16 places on.
TEST(QuantTables, Mxfp4RegisterValuesAreTheTable) {
  int8_t words[16];
  std::memcpy(words, kMxfp4ValueWords, sizeof(words));
  for (int c = 0; c < 16; ++c) EXPECT_EQ(words[c], kvalues_mxfp4[c]) << "code " << c;
  for (int byte = 0; byte < 256; ++byte) {
    for (int place = 0; place < 16; ++place) {
      uint8_t qs[16];
      for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(byte * 7 + j * 29);
      qs[place] = static_cast<uint8_t>(byte);
      uint32_t q[4], v[8];
      std::memcpy(q, qs, sizeof(q));
      mxfp4_block_values(q, v);
      int8_t got[32];
      std::memcpy(got, v, sizeof(got));
      for (int j = 0; j < 16; ++j) {
        ASSERT_EQ(got[j], kvalues_mxfp4[qs[j] & 0xF]) << "byte " << byte << " place " << place;
        ASSERT_EQ(got[j + 16], kvalues_mxfp4[qs[j] >> 4]) << "byte " << byte << " place " << place;
      }
    }
  }
}

// A byte-aligned MXFP4 block out of the five aligned words that hold it, at each of the four
// offsets a 17-byte block can start at within a word: its scale and quants, as the bytes are.
TEST(QuantTables, Mxfp4BlocksComeOutOfTheirAlignedWords) {
  uint8_t bytes[24];
  for (int i = 0; i < 24; ++i) bytes[i] = static_cast<uint8_t>(0xA0 + 7 * i);
  for (uint32_t offset = 0; offset < 4; ++offset) {
    uint32_t words[6] = {};
    std::memcpy(words, bytes, 20);
    uint8_t e = 0;
    uint32_t q[4];
    mxfp4_block_from_words(words, offset, &e, q);
    EXPECT_EQ(e, bytes[offset]) << "offset " << offset;
    EXPECT_EQ(std::memcmp(q, bytes + offset + 1, 16), 0) << "offset " << offset;
  }
}

}  // namespace
}  // namespace v4::kernels
