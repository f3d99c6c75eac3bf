#include "worker/kv_row_codec.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "model/fp8.h"

namespace v4 {
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

void encode_halves(bool bf16, const float* row, uint32_t n, uint8_t* out) {
  for (uint32_t i = 0; i < n; ++i) {
    const uint16_t h = bf16 ? fp32_to_bf16(row[i]) : fp32_to_fp16(row[i]);
    std::memcpy(out + 2 * size_t{i}, &h, 2);
  }
}

void decode_halves(bool bf16, const uint8_t* in, uint32_t n, float* row) {
  for (uint32_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, in + 2 * size_t{i}, 2);
    row[i] = bf16 ? bf16_to_fp32(h) : fp16_to_fp32(h);
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
  return (storage == KvStorage::kF32 ? 4 : 2) * size_t{s.indexer_dim};
}

void encode_main_row(KvStorage storage, const KvRowShape& s, const float* row, uint8_t* out) {
  switch (storage) {
    case KvStorage::kF32:
      std::memcpy(out, row, 4 * size_t{s.head_dim});
      return;
    case KvStorage::kF16:
      encode_halves(false, row, s.head_dim, out);
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
      decode_halves(false, in, s.head_dim, row);
      return;
    case KvStorage::kFp8:
      decode_fp8_main(s, in, row);
      return;
  }
}

void encode_indexer_row(KvStorage storage, const KvRowShape& s, const float* row, uint8_t* out) {
  if (storage == KvStorage::kF32) {
    std::memcpy(out, row, 4 * size_t{s.indexer_dim});
  } else {
    encode_halves(storage == KvStorage::kFp8, row, s.indexer_dim, out);
  }
}

void decode_indexer_row(KvStorage storage, const KvRowShape& s, const uint8_t* in, float* row) {
  if (storage == KvStorage::kF32) {
    std::memcpy(row, in, 4 * size_t{s.indexer_dim});
  } else {
    decode_halves(storage == KvStorage::kFp8, in, s.indexer_dim, row);
  }
}

}  // namespace v4
