#include "model/backend/kv_row_codec.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/fp4.h"
#include "kernels/cpu/fp8.h"

namespace v4 {
using kernels::e4m3_round;
using kernels::fp4_round_trip;
using kernels::fp8_round_trip;
using kernels::kE2m1Grid;
using kernels::pow2_ceil;
namespace {

// Spec §3.4.2: the model's FP8 simulation of main rows uses blocks of 64 nope values.
constexpr uint32_t kFp8Block = 64;

uint32_t fp8_blocks(const KvRowShape& s) {
  return (s.head_dim - s.rope_dim + kFp8Block - 1) / kFp8Block;
}

// Scale bytes are padded to 8 so the real model's row is 448 + 128 + 8 = 584 bytes (§4.3).
size_t fp8_scale_bytes(const KvRowShape& s) { return (fp8_blocks(s) + 7) / 8 * 8; }

// Positive E4M3fn values by code 0..126 (127 is NaN), ascending.
const std::array<float, 127>& e4m3_table() {
  static const std::array<float, 127> table = [] {
    std::array<float, 127> t{};
    for (uint32_t c = 0; c < 127; ++c) {
      const uint32_t exp = c >> 3, mant = c & 7;
      t[c] = exp == 0
                 ? std::ldexp(static_cast<float>(mant), -9)
                 : std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, static_cast<int>(exp) - 7);
    }
    return t;
  }();
  return table;
}

void encode_fp8_main(const KvRowShape& s, const float* row, uint8_t* out) {
  const uint32_t nope = s.head_dim - s.rope_dim;
  uint8_t* scales = out + nope + 2 * size_t{s.rope_dim};
  std::memset(scales, 0, fp8_scale_bytes(s));
  for (uint32_t b = 0; b < fp8_blocks(s); ++b) {
    const uint32_t begin = b * kFp8Block, end = std::min(nope, begin + kFp8Block);
    float amax = 0.0f;
    for (uint32_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(row[i]));
    // The model's scale rule applied to the already-rounded values: it may pick a smaller power
    // of two than the original block had, which still represents every value exactly (E4M3
    // values times 2^j stay on the grid while below 448).
    const float scale = pow2_ceil(std::max(amax, 1e-4f) / 448.0f);
    int exponent = 0;
    std::frexp(scale, &exponent);
    scales[b] = static_cast<uint8_t>(exponent - 1 + 127);  // UE8M0: biased exponent
    for (uint32_t i = begin; i < end; ++i) out[i] = e4m3_encode(row[i] / scale);
  }
  for (uint32_t i = 0; i < s.rope_dim; ++i) {
    const uint16_t h = fp32_to_bf16(row[nope + i]);
    std::memcpy(out + nope + 2 * size_t{i}, &h, 2);
  }
}

void decode_fp8_main(const KvRowShape& s, const uint8_t* in, float* row) {
  const uint32_t nope = s.head_dim - s.rope_dim;
  const uint8_t* scales = in + nope + 2 * size_t{s.rope_dim};
  for (uint32_t b = 0; b < fp8_blocks(s); ++b) {
    const float scale = std::ldexp(1.0f, static_cast<int>(scales[b]) - 127);
    const uint32_t begin = b * kFp8Block, end = std::min(nope, begin + kFp8Block);
    for (uint32_t i = begin; i < end; ++i) row[i] = e4m3_decode(in[i]) * scale;
  }
  for (uint32_t i = 0; i < s.rope_dim; ++i) {
    uint16_t h;
    std::memcpy(&h, in + nope + 2 * size_t{i}, 2);
    row[nope + i] = bf16_to_fp32(h);
  }
}

// Spec §4.3 FP4 indexer row: indexer_dim/2 bytes of E2M1 codes (element 2i in the low nibble,
// sign in bit 3, grid index in bits 0-2) followed by one UE8M0 scale per block of 32.
constexpr uint32_t kFp4Block = 32;

uint8_t e2m1_code(float v) {
  const float a = std::fabs(v);
  uint8_t best = 0;
  for (uint8_t i = 1; i < kE2m1Grid.size(); ++i) {
    if (std::fabs(kE2m1Grid[i] - a) < std::fabs(kE2m1Grid[best] - a)) best = i;
  }
  return static_cast<uint8_t>(best | (std::signbit(v) ? 0x8 : 0));
}

float e2m1_value(uint8_t code) {
  const float v = kE2m1Grid[code & 0x7];
  return (code & 0x8) ? -v : v;
}

// The model's own scale rule (spec §3.4.4) applied to the already-rounded key: it returns the
// scale the key was made with, or half of it when every value is at most 3·s, in which case
// each value is still s/2 times a grid point (2·{0, .5, 1, 1.5, 2, 3} lies on the grid).
uint32_t fp4_blocks(const KvRowShape& s) { return (s.indexer_dim + kFp4Block - 1) / kFp4Block; }
size_t fp4_code_bytes(const KvRowShape& s) { return (s.indexer_dim + 1) / 2; }

void encode_fp4_indexer(const KvRowShape& s, const float* row, uint8_t* out) {
  uint8_t* scales = out + fp4_code_bytes(s);
  std::memset(out, 0, fp4_code_bytes(s));
  for (uint32_t b = 0; b < fp4_blocks(s); ++b) {
    const uint32_t begin = b * kFp4Block, end = std::min(s.indexer_dim, begin + kFp4Block);
    float amax = 6.0f * 0x1p-126f;
    for (uint32_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(row[i]));
    const float scale = pow2_ceil(amax / 6.0f);
    int exponent = 0;
    std::frexp(scale, &exponent);
    scales[b] = static_cast<uint8_t>(exponent - 1 + 127);  // UE8M0: biased exponent
    for (uint32_t i = begin; i < end; ++i) {
      out[i / 2] |= static_cast<uint8_t>(e2m1_code(row[i] / scale) << (4 * (i % 2)));
    }
  }
}

void decode_fp4_indexer(const KvRowShape& s, const uint8_t* in, float* row) {
  const uint8_t* scales = in + fp4_code_bytes(s);
  for (uint32_t i = 0; i < s.indexer_dim; ++i) {
    const float scale = std::ldexp(1.0f, static_cast<int>(scales[i / kFp4Block]) - 127);
    row[i] = e2m1_value(static_cast<uint8_t>(in[i / 2] >> (4 * (i % 2)))) * scale;
  }
}

void encode_halves(const float* row, uint32_t n, uint8_t* out) {
  for (uint32_t i = 0; i < n; ++i) {
    const uint16_t h = fp32_to_fp16(row[i]);
    std::memcpy(out + 2 * size_t{i}, &h, 2);
  }
}

void decode_halves(const uint8_t* in, uint32_t n, float* row) {
  for (uint32_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, in + 2 * size_t{i}, 2);
    row[i] = fp16_to_fp32(h);
  }
}

}  // namespace

Result<KvStorage> kv_storage_from_name(const std::string& name) {
  if (name == "f32") return KvStorage::kF32;
  if (name == "f16") return KvStorage::kF16;
  if (name == "fp8") return KvStorage::kFp8;
  return Status::error("KV storage \"" + name + "\": expected f32, f16 or fp8");
}

const char* kv_storage_name(KvStorage storage) {
  switch (storage) {
    case KvStorage::kF32:
      return "f32";
    case KvStorage::kF16:
      return "f16";
    case KvStorage::kFp8:
      return "fp8";
  }
  return "?";
}

float e4m3_decode(uint8_t code) {
  const float v = e4m3_table()[std::min<uint8_t>(code & 0x7F, 126)];
  return (code & 0x80) ? -v : v;
}

uint8_t e4m3_encode(float x) {
  const std::array<float, 127>& t = e4m3_table();
  const float a = std::min(std::fabs(x), 448.0f);
  size_t c = static_cast<size_t>(std::lower_bound(t.begin(), t.end(), a) - t.begin());
  if (c > 0 &&
      (c == t.size() || a - t[c - 1] < t[c] - a || (a - t[c - 1] == t[c] - a && (c - 1) % 2 == 0)))
    --c;
  return static_cast<uint8_t>(c | (std::signbit(x) ? 0x80 : 0));
}

size_t main_row_bytes(KvStorage storage, const KvRowShape& s) {
  switch (storage) {
    case KvStorage::kF32:
      return 4 * size_t{s.head_dim};
    case KvStorage::kF16:
      return 2 * size_t{s.head_dim};
    case KvStorage::kFp8:
      return s.head_dim - s.rope_dim + 2 * size_t{s.rope_dim} + fp8_scale_bytes(s);
  }
  return 0;
}

size_t indexer_row_bytes(KvStorage storage, const KvRowShape& s) {
  switch (storage) {
    case KvStorage::kF32:
      return 4 * size_t{s.indexer_dim};
    case KvStorage::kF16:
      return 2 * size_t{s.indexer_dim};
    case KvStorage::kFp8:
      return fp4_code_bytes(s) + fp4_blocks(s);
  }
  return 0;
}

void encode_main_row(KvStorage storage, const KvRowShape& s, const float* row, uint8_t* out) {
  switch (storage) {
    case KvStorage::kF32:
      std::memcpy(out, row, 4 * size_t{s.head_dim});
      return;
    case KvStorage::kF16:
      encode_halves(row, s.head_dim, out);
      return;
    case KvStorage::kFp8:
      encode_fp8_main(s, row, out);
      return;
  }
}

void decode_main_row(KvStorage storage, const KvRowShape& s, const uint8_t* in, float* row) {
  switch (storage) {
    case KvStorage::kF32:
      std::memcpy(row, in, 4 * size_t{s.head_dim});
      return;
    case KvStorage::kF16:
      decode_halves(in, s.head_dim, row);
      return;
    case KvStorage::kFp8:
      decode_fp8_main(s, in, row);
      return;
  }
}

void encode_indexer_row(KvStorage storage, const KvRowShape& s, const float* row, uint8_t* out) {
  switch (storage) {
    case KvStorage::kF32:
      std::memcpy(out, row, 4 * size_t{s.indexer_dim});
      return;
    case KvStorage::kF16:
      encode_halves(row, s.indexer_dim, out);
      return;
    case KvStorage::kFp8:
      encode_fp4_indexer(s, row, out);
      return;
  }
}

void decode_indexer_row(KvStorage storage, const KvRowShape& s, const uint8_t* in, float* row) {
  switch (storage) {
    case KvStorage::kF32:
      std::memcpy(row, in, 4 * size_t{s.indexer_dim});
      return;
    case KvStorage::kF16:
      decode_halves(in, s.indexer_dim, row);
      return;
    case KvStorage::kFp8:
      decode_fp4_indexer(s, in, row);
      return;
  }
}

}  // namespace v4
