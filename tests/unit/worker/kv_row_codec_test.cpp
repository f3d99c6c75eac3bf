// Row encodings of spec §4.3 against the model's own FP8 simulation (model/fp8.h).
#include "worker/kv_row_codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "model/fp4.h"
#include "model/fp8.h"

namespace v4 {
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

// Indexer keys are FP4-simulated by the model (spec §3.4.4); BF16 holds E2M1 × 2^k exactly.
TEST(KvRowCodec, IndexerKeysSurviveBf16Exactly) {
  const KvRowShape shape{512, 64, 128};
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 2.0f);
  std::vector<float> key(128);
  for (float& v : key) v = d(rng);
  fp4_round_trip(key.data(), 128, 32);
  std::vector<uint8_t> bytes(indexer_row_bytes(KvStorage::kFp8, shape));
  std::vector<float> back(128);
  encode_indexer_row(KvStorage::kFp8, shape, key.data(), bytes.data());
  decode_indexer_row(KvStorage::kFp8, shape, bytes.data(), back.data());
  EXPECT_EQ(key, back);
}

}  // namespace
}  // namespace v4
