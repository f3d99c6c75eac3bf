// Byte encodings of cached compressed rows (spec §4.3). F32 keeps the forward's values; F16
// halves the bytes but is lossy (the F32 RoPE tail and tiny FP8 scales do not fit binary16);
// FP8 is the 584-byte production layout for main rows (nope dims as E4M3 with one UE8M0 scale
// per 64 values, RoPE tail as BF16). In FP8 mode indexer keys take the 68-byte FP4 layout
// (E2M1 codes with one UE8M0 scale per 32 values): the model already rounds them to exactly
// those values (spec §3.4.4), so FP8 mode loses nothing but the main rows' BF16 RoPE tails.
// The codecs are V4_HD: the CPU and the device backends encode and decode with the same code.
#pragma once

#include <math.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/half.h"
#include "core/hd.h"
#include "core/status.h"
#include "kernels/cpu/fp4.h"
#include "kernels/cpu/fp8.h"

namespace v4 {

enum class KvStorage { kF32, kF16, kFp8 };

Result<KvStorage> kv_storage_from_name(const std::string& name);
const char* kv_storage_name(KvStorage storage);

// Shape of the rows of one model: head_dim-wide main rows whose last rope_dim values are the
// RoPE tail, and indexer keys of indexer_dim values.
struct KvRowShape {
  uint32_t head_dim = 0;
  uint32_t rope_dim = 0;
  uint32_t indexer_dim = 0;

  bool operator==(const KvRowShape&) const = default;
};

namespace kv_codec {

// Spec §3.4.2: the model's FP8 simulation of main rows uses blocks of 64 nope values.
inline constexpr uint32_t kFp8Block = 64;
// Spec §4.3 FP4 indexer row: indexer_dim/2 bytes of E2M1 codes (element 2i in the low nibble,
// sign in bit 3, grid index in bits 0-2) followed by one UE8M0 scale per block of 32.
inline constexpr uint32_t kFp4Block = 32;

V4_HD inline uint32_t fp8_blocks(const KvRowShape& s) {
  return (s.head_dim - s.rope_dim + kFp8Block - 1) / kFp8Block;
}
// Scale bytes are padded to 8 so the real model's row is 448 + 128 + 8 = 584 bytes (§4.3).
V4_HD inline size_t fp8_scale_bytes(const KvRowShape& s) { return (fp8_blocks(s) + 7) / 8 * 8; }
V4_HD inline uint32_t fp4_blocks(const KvRowShape& s) {
  return (s.indexer_dim + kFp4Block - 1) / kFp4Block;
}
V4_HD inline size_t fp4_code_bytes(const KvRowShape& s) { return (s.indexer_dim + 1) / 2; }

// The UE8M0 byte of a power of two.
V4_HD inline uint8_t ue8m0_of(float power_of_two) {
  int exponent = 0;
  frexpf(power_of_two, &exponent);
  return static_cast<uint8_t>(exponent - 1 + 127);
}

}  // namespace kv_codec

// E4M3fn value of a code (127, NaN, reads as the largest finite value).
V4_HD inline float e4m3_decode(uint8_t code) {
  const uint32_t c = (code & 0x7Fu) < 126u ? (code & 0x7Fu) : 126u;
  const uint32_t exp = c >> 3, mant = c & 7;
  const float v = exp == 0
                      ? ldexpf(static_cast<float>(mant), -9)
                      : ldexpf(1.0f + static_cast<float>(mant) / 8.0f, static_cast<int>(exp) - 7);
  return (code & 0x80) ? -v : v;
}

// E4M3fn code of x (nearest value, ties to even code — the even mantissa kernels::e4m3_round
// picks); exact for values on the E4M3 grid.
V4_HD inline uint8_t e4m3_encode(float x) {
  const float v = fabsf(kernels::e4m3_round(x));
  uint32_t code;
  if (v < 0x1p-6f) {
    code = static_cast<uint32_t>(v * 512.0f);  // subnormal: v = mant·2^-9
  } else {
    int e = 0;
    const float m = frexpf(v, &e);  // v = (2m)·2^(e-1), 2m in [1, 2)
    code = static_cast<uint32_t>(e - 1 + 7) << 3 | static_cast<uint32_t>((2.0f * m - 1.0f) * 8.0f);
  }
  return static_cast<uint8_t>(code | (signbit(x) ? 0x80u : 0u));
}

V4_HD inline uint8_t e2m1_code(float v) {
  const float a = fabsf(v);
  uint8_t best = 0;
  for (uint8_t i = 1; i < 8; ++i) {
    if (fabsf(kernels::e2m1_value(i) - a) < fabsf(kernels::e2m1_value(best) - a)) best = i;
  }
  return static_cast<uint8_t>(best | (signbit(v) ? 0x8 : 0));
}

V4_HD inline float e2m1_decode(uint8_t code) {
  const float v = kernels::e2m1_value(code & 0x7);
  return (code & 0x8) ? -v : v;
}

V4_HD inline size_t main_row_bytes(KvStorage storage, const KvRowShape& s) {
  switch (storage) {
    case KvStorage::kF32:
      return 4 * size_t{s.head_dim};
    case KvStorage::kF16:
      return 2 * size_t{s.head_dim};
    case KvStorage::kFp8:
      return s.head_dim - s.rope_dim + 2 * size_t{s.rope_dim} + kv_codec::fp8_scale_bytes(s);
  }
  return 0;
}

V4_HD inline size_t indexer_row_bytes(KvStorage storage, const KvRowShape& s) {
  switch (storage) {
    case KvStorage::kF32:
      return 4 * size_t{s.indexer_dim};
    case KvStorage::kF16:
      return 2 * size_t{s.indexer_dim};
    case KvStorage::kFp8:
      return kv_codec::fp4_code_bytes(s) + kv_codec::fp4_blocks(s);
  }
  return 0;
}

namespace kv_codec {

V4_HD inline void encode_fp8_main(const KvRowShape& s, const float* row, uint8_t* out) {
  const uint32_t nope = s.head_dim - s.rope_dim;
  uint8_t* scales = out + nope + 2 * size_t{s.rope_dim};
  for (size_t i = 0; i < fp8_scale_bytes(s); ++i) scales[i] = 0;
  for (uint32_t b = 0; b < fp8_blocks(s); ++b) {
    const uint32_t begin = b * kFp8Block, end = nope < begin + kFp8Block ? nope : begin + kFp8Block;
    float amax = 0.0f;
    for (uint32_t i = begin; i < end; ++i) amax = fmaxf(amax, fabsf(row[i]));
    // The model's scale rule applied to the already-rounded values: it may pick a smaller power
    // of two than the original block had, which still represents every value exactly (E4M3
    // values times 2^j stay on the grid while below 448).
    const float scale = kernels::pow2_ceil(fmaxf(amax, 1e-4f) / 448.0f);
    scales[b] = ue8m0_of(scale);
    for (uint32_t i = begin; i < end; ++i) out[i] = e4m3_encode(row[i] / scale);
  }
  for (uint32_t i = 0; i < s.rope_dim; ++i) {
    const uint16_t h = fp32_to_bf16(row[nope + i]);
    memcpy(out + nope + 2 * size_t{i}, &h, 2);
  }
}

// Value i of decode_fp8_main's row, alone (a GPU lane per value reads a row coalesced).
V4_HD inline float fp8_main_value(const KvRowShape& s, const uint8_t* in, uint32_t i) {
  const uint32_t nope = s.head_dim - s.rope_dim;
  if (i < nope) {
    const uint8_t* scales = in + nope + 2 * size_t{s.rope_dim};
    return e4m3_decode(in[i]) * ldexpf(1.0f, static_cast<int>(scales[i / kFp8Block]) - 127);
  }
  uint16_t h;
  memcpy(&h, in + nope + 2 * size_t{i - nope}, 2);
  return bf16_to_fp32(h);
}

V4_HD inline void decode_fp8_main(const KvRowShape& s, const uint8_t* in, float* row) {
  const uint32_t nope = s.head_dim - s.rope_dim;
  const uint8_t* scales = in + nope + 2 * size_t{s.rope_dim};
  for (uint32_t b = 0; b < fp8_blocks(s); ++b) {
    const float scale = ldexpf(1.0f, static_cast<int>(scales[b]) - 127);
    const uint32_t begin = b * kFp8Block, end = nope < begin + kFp8Block ? nope : begin + kFp8Block;
    for (uint32_t i = begin; i < end; ++i) row[i] = e4m3_decode(in[i]) * scale;
  }
  for (uint32_t i = 0; i < s.rope_dim; ++i) {
    uint16_t h;
    memcpy(&h, in + nope + 2 * size_t{i}, 2);
    row[nope + i] = bf16_to_fp32(h);
  }
}

// The model's own scale rule (spec §3.4.4) applied to the already-rounded key: it returns the
// scale the key was made with, or half of it when every value is at most 3·s, in which case
// each value is still s/2 times a grid point (2·{0, .5, 1, 1.5, 2, 3} lies on the grid).
V4_HD inline void encode_fp4_indexer(const KvRowShape& s, const float* row, uint8_t* out) {
  uint8_t* scales = out + fp4_code_bytes(s);
  for (size_t i = 0; i < fp4_code_bytes(s); ++i) out[i] = 0;
  for (uint32_t b = 0; b < fp4_blocks(s); ++b) {
    const uint32_t begin = b * kFp4Block;
    const uint32_t end = s.indexer_dim < begin + kFp4Block ? s.indexer_dim : begin + kFp4Block;
    float amax = 6.0f * 0x1p-126f;
    for (uint32_t i = begin; i < end; ++i) amax = fmaxf(amax, fabsf(row[i]));
    const float scale = kernels::pow2_ceil(amax / 6.0f);
    scales[b] = ue8m0_of(scale);
    for (uint32_t i = begin; i < end; ++i) {
      out[i / 2] |= static_cast<uint8_t>(e2m1_code(row[i] / scale) << (4 * (i % 2)));
    }
  }
}

V4_HD inline void decode_fp4_indexer(const KvRowShape& s, const uint8_t* in, float* row) {
  const uint8_t* scales = in + fp4_code_bytes(s);
  for (uint32_t i = 0; i < s.indexer_dim; ++i) {
    const float scale = ldexpf(1.0f, static_cast<int>(scales[i / kFp4Block]) - 127);
    row[i] = e2m1_decode(static_cast<uint8_t>(in[i / 2] >> (4 * (i % 2)))) * scale;
  }
}

V4_HD inline void encode_halves(const float* row, uint32_t n, uint8_t* out) {
  for (uint32_t i = 0; i < n; ++i) {
    const uint16_t h = fp32_to_fp16(row[i]);
    memcpy(out + 2 * size_t{i}, &h, 2);
  }
}

V4_HD inline void decode_halves(const uint8_t* in, uint32_t n, float* row) {
  for (uint32_t i = 0; i < n; ++i) {
    uint16_t h;
    memcpy(&h, in + 2 * size_t{i}, 2);
    row[i] = fp16_to_fp32(h);
  }
}

}  // namespace kv_codec

V4_HD inline void encode_main_row(KvStorage storage, const KvRowShape& s, const float* row,
                                  uint8_t* out) {
  switch (storage) {
    case KvStorage::kF32:
      memcpy(out, row, 4 * size_t{s.head_dim});
      return;
    case KvStorage::kF16:
      kv_codec::encode_halves(row, s.head_dim, out);
      return;
    case KvStorage::kFp8:
      kv_codec::encode_fp8_main(s, row, out);
      return;
  }
}

V4_HD inline void decode_main_row(KvStorage storage, const KvRowShape& s, const uint8_t* in,
                                  float* row) {
  switch (storage) {
    case KvStorage::kF32:
      memcpy(row, in, 4 * size_t{s.head_dim});
      return;
    case KvStorage::kF16:
      kv_codec::decode_halves(in, s.head_dim, row);
      return;
    case KvStorage::kFp8:
      kv_codec::decode_fp8_main(s, in, row);
      return;
  }
}

// Value i of decode_main_row's row, alone: the same bits, one value at a time.
V4_HD inline float decode_main_value(KvStorage storage, const KvRowShape& s, const uint8_t* in,
                                     uint32_t i) {
  switch (storage) {
    case KvStorage::kF32: {
      float v;
      memcpy(&v, in + 4 * size_t{i}, 4);
      return v;
    }
    case KvStorage::kF16: {
      uint16_t h;
      memcpy(&h, in + 2 * size_t{i}, 2);
      return fp16_to_fp32(h);
    }
    case KvStorage::kFp8:
      return kv_codec::fp8_main_value(s, in, i);
  }
  return 0.0f;
}

V4_HD inline void encode_indexer_row(KvStorage storage, const KvRowShape& s, const float* row,
                                     uint8_t* out) {
  switch (storage) {
    case KvStorage::kF32:
      memcpy(out, row, 4 * size_t{s.indexer_dim});
      return;
    case KvStorage::kF16:
      kv_codec::encode_halves(row, s.indexer_dim, out);
      return;
    case KvStorage::kFp8:
      kv_codec::encode_fp4_indexer(s, row, out);
      return;
  }
}

V4_HD inline void decode_indexer_row(KvStorage storage, const KvRowShape& s, const uint8_t* in,
                                     float* row) {
  switch (storage) {
    case KvStorage::kF32:
      memcpy(row, in, 4 * size_t{s.indexer_dim});
      return;
    case KvStorage::kF16:
      kv_codec::decode_halves(in, s.indexer_dim, row);
      return;
    case KvStorage::kFp8:
      kv_codec::decode_fp4_indexer(s, in, row);
      return;
  }
}

}  // namespace v4
