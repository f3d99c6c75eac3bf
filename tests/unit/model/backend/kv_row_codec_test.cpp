// Row encodings of spec §4.3 against the model's own FP8 simulation (kernels/cpu/fp8.h).
#include "model/backend/kv_row_codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/fp4.h"
#include "kernels/cpu/fp8.h"

namespace v4 {
using kernels::fp4_round_trip;
using kernels::fp8_round_trip;
namespace {

TEST(KvRowCodec, Fp8MainRowOfTheRealModelIs584Bytes) {
  EXPECT_EQ(main_row_bytes(KvStorage::kFp8, {512, 64, 128}), 584u);
  EXPECT_EQ(main_row_bytes(KvStorage::kF16, {512, 64, 128}), 1024u);
  EXPECT_EQ(indexer_row_bytes(KvStorage::kF32, {512, 64, 128}), 512u);
}

TEST(KvRowCodec, E4m3CodesRoundTripEveryFiniteValue) {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;  // NaN codes
    const uint8_t code = static_cast<uint8_t>(c);
    if (code == 0x80) continue;  // -0 encodes as +0's sign-flipped twin; compared below
    EXPECT_EQ(e4m3_encode(e4m3_decode(code)), code) << c;
  }
}

// Rows as the forward leaves them (nope dims FP8-simulated, spec §3.4.2) decode bit-exactly in
// the nope part; the RoPE tail is BF16, i.e. lossy: within 2^-8 relative.
TEST(KvRowCodec, Fp8IsExactOnTheModelsFp8ValuesAndBf16OnTheRopeTail) {
  const KvRowShape shape{512, 64, 128};
  std::mt19937 rng(7);
  for (float magnitude : {1e-6f, 1e-3f, 1.0f, 300.0f}) {
    std::vector<float> row(512);
    std::normal_distribution<float> d(0.0f, magnitude);
    for (float& v : row) v = d(rng);
    fp8_round_trip(row.data(), 448, 64);
    std::vector<uint8_t> bytes(main_row_bytes(KvStorage::kFp8, shape));
    std::vector<float> back(512);
    encode_main_row(KvStorage::kFp8, shape, row.data(), bytes.data());
    decode_main_row(KvStorage::kFp8, shape, bytes.data(), back.data());
    EXPECT_EQ(std::memcmp(row.data(), back.data(), 448 * sizeof(float)), 0) << magnitude;
    for (int i = 448; i < 512; ++i) EXPECT_NEAR(back[i], row[i], std::fabs(row[i]) / 256);
  }
}

// Indexer keys are FP4-simulated by the model (spec §3.4.4), so the 68-byte FP4 row of §4.3
// holds them exactly: at every magnitude (down to the 2^-126 scale floor), for all-zero
// blocks, for blocks whose largest rounded value is 3·s (the encoder then picks s/2), and for
// a width that is not a multiple of the 32-value block.
TEST(KvRowCodec, Fp4IndexerRowHoldsTheModelsKeysExactly) {
  EXPECT_EQ(indexer_row_bytes(KvStorage::kFp8, {512, 64, 128}), 68u);
  std::mt19937 rng(3);
  for (uint32_t dim : {128u, 64u, 72u}) {
    const KvRowShape shape{512, 64, dim};
    for (float magnitude : {0.0f, 1e-40f, 1e-30f, 1e-3f, 2.0f, 1e4f, 1e30f}) {
      std::vector<float> key(dim);
      std::normal_distribution<float> d(0.0f, 1.0f);
      for (float& v : key) v = magnitude * d(rng);
      if (dim >= 64) {
        for (uint32_t i = 32; i < 64; ++i) key[i] = magnitude * 0.01f * d(rng);
        key[40] = magnitude;
      }
      fp4_round_trip(key.data(), dim, 32);
      std::vector<uint8_t> bytes(indexer_row_bytes(KvStorage::kFp8, shape));
      std::vector<float> back(dim);
      encode_indexer_row(KvStorage::kFp8, shape, key.data(), bytes.data());
      decode_indexer_row(KvStorage::kFp8, shape, bytes.data(), back.data());
      EXPECT_EQ(std::memcmp(key.data(), back.data(), dim * sizeof(float)), 0)
          << "dim " << dim << " magnitude " << magnitude;
    }
  }
}

// A block whose rounded maximum is exactly 3·s: the scale rule re-derived from the stored
// values yields s/2, and every value must still come back.
TEST(KvRowCodec, Fp4IndexerRowWhenTheRoundedMaximumHalvesTheScale) {
  const KvRowShape shape{512, 64, 32};
  std::vector<float> key(32, 0.0f);
  key[0] = 3.2f;  // s = 2^ceil(log2(3.2/6)) = 1, rounds to 3
  key[1] = -1.4f;
  key[2] = 0.3f;
  fp4_round_trip(key.data(), 32, 32);
  ASSERT_EQ(key[0], 3.0f);
  std::vector<uint8_t> bytes(indexer_row_bytes(KvStorage::kFp8, shape));
  std::vector<float> back(32);
  encode_indexer_row(KvStorage::kFp8, shape, key.data(), bytes.data());
  decode_indexer_row(KvStorage::kFp8, shape, bytes.data(), back.data());
  EXPECT_EQ(key, back);
}

// decode_main_value (a device lane's decoding of one value) is decode_main_row's value, bit for
// bit, in every storage, on rows whose last FP8 block is partial and on the real model's shape.
TEST(KvRowCodec, MainRowValueAloneIsTheRowsDecodedValue) {
  std::mt19937 rng(11);
  for (const KvRowShape shape : {KvRowShape{512, 64, 128}, KvRowShape{160, 32, 64}}) {
    for (KvStorage storage : {KvStorage::kF32, KvStorage::kF16, KvStorage::kFp8}) {
      std::vector<float> row(shape.head_dim);
      std::normal_distribution<float> d(0.0f, 0.7f);
      for (float& v : row) v = d(rng);
      row[3] = 0.0f;
      row[5] = -1e-30f;  // below every scale's smallest step: decodes to a signed zero
      std::vector<uint8_t> bytes(main_row_bytes(storage, shape));
      std::vector<float> whole(shape.head_dim);
      encode_main_row(storage, shape, row.data(), bytes.data());
      decode_main_row(storage, shape, bytes.data(), whole.data());
      for (uint32_t i = 0; i < shape.head_dim; ++i) {
        const float alone = decode_main_value(storage, shape, bytes.data(), i);
        ASSERT_EQ(std::memcmp(&alone, &whole[i], sizeof(float)), 0)
            << kv_storage_name(storage) << " value " << i << ": " << alone << " vs " << whole[i];
      }
    }
  }
}

}  // namespace
}  // namespace v4
