// Test inputs shared by the SIMD dot-product tests: random weight rows of every quantized format.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/ggml_type.h"
#include "core/half.h"

namespace v4::kernels::test_support {

// Every quantized weight format of the seeds (spec §6).
inline constexpr GgmlType kQuantized[] = {
    GgmlType::Q8_0, GgmlType::MXFP4,   GgmlType::Q2_K,   GgmlType::Q4_K,  GgmlType::Q5_K,
    GgmlType::Q6_K, GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ1_S, GgmlType::IQ1_M};

// Random weight row: random bytes, with every scale field replaced by a finite value.
inline std::vector<uint8_t> random_row(GgmlType t, int64_t n, std::mt19937& rng) {
  const GgmlTypeTraits tr = ggml_type_traits(t);
  std::vector<uint8_t> row(static_cast<size_t>(n / tr.block_size * tr.type_size));
  for (uint8_t& b : row) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(0.001f, 0.1f);
  for (size_t off = 0; off < row.size(); off += tr.type_size) {
    auto put = [&](size_t at) {
      const uint16_t h = fp32_to_fp16(scale(rng));
      std::memcpy(&row[off + at], &h, 2);
    };
    switch (t) {
      case GgmlType::Q8_0:
        put(0);
        break;
      case GgmlType::Q2_K:
        put(80), put(82);
        break;
      case GgmlType::Q4_K:
      case GgmlType::Q5_K:
        put(0), put(2);
        break;
      case GgmlType::Q6_K:
        put(208);
        break;
      case GgmlType::IQ2_XXS:
      case GgmlType::IQ2_XS:
      case GgmlType::IQ1_S:
        put(0);
        break;
      case GgmlType::MXFP4:  // E8M0 exponent: 2^-20 to 2^4, every block a different one
        row[off] = static_cast<uint8_t>(107 + rng() % 25);
        break;
      case GgmlType::IQ1_M: {  // the fp16 block scale lives in the words' top nibbles
        const uint16_t h = fp32_to_fp16(scale(rng));
        for (int k = 0; k < 4; ++k) {
          uint8_t& top = row[off + 48 + 2 * static_cast<size_t>(k) + 1];
          top = static_cast<uint8_t>((top & 0x0F) | (((h >> (4 * k)) & 0xF) << 4));
        }
        break;
      }
      default:
        break;
    }
  }
  return row;
}

}  // namespace v4::kernels::test_support
