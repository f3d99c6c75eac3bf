// Seeded inputs shared by the quant kernel tests: random blocks of every spec §6 format (with
// finite fp16 scales) and Gaussian rows.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/ggml_type.h"
#include "kernels/cpu/quant_blocks.h"

namespace v4::kernels::test {

inline constexpr GgmlType kBlockTypes[] = {
    GgmlType::Q8_0,    GgmlType::Q2_K,   GgmlType::Q4_K,  GgmlType::Q5_K,  GgmlType::Q6_K,
    GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ1_S, GgmlType::IQ1_M, GgmlType::MXFP4,
};

inline constexpr GgmlType kAllTypes[] = {
    GgmlType::F32,   GgmlType::F16,   GgmlType::BF16,  GgmlType::Q8_0,    GgmlType::Q2_K,
    GgmlType::Q4_K,  GgmlType::Q5_K,  GgmlType::Q6_K,  GgmlType::IQ2_XXS, GgmlType::IQ2_XS,
    GgmlType::IQ1_S, GgmlType::IQ1_M, GgmlType::MXFP4,
};

inline std::string type_label(GgmlType type) { return std::string(ggml_type_name(type)); }

// An fp16 with all-ones exponent (inf/NaN) gets its top exponent bit cleared: inf·0 would give
// NaNs, which compare unequal and say nothing about the format.
inline void make_finite(uint16_t* h) {
  if ((*h & 0x7C00) == 0x7C00) *h = static_cast<uint16_t>(*h & ~0x4000);
}

template <class Block>
void finite_field(std::vector<uint8_t>& bytes, size_t block, size_t offset) {
  uint16_t h;
  std::memcpy(&h, bytes.data() + block * sizeof(Block) + offset, 2);
  make_finite(&h);
  std::memcpy(bytes.data() + block * sizeof(Block) + offset, &h, 2);
}

// n_blocks blocks of uniformly random bytes, fp16 scales made finite.
inline std::vector<uint8_t> random_blocks(GgmlType type, size_t n_blocks, uint32_t seed) {
  const size_t type_size = ggml_type_traits(type).type_size;
  std::vector<uint8_t> bytes(n_blocks * type_size);
  std::mt19937 rng(seed);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  for (size_t i = 0; i < n_blocks; ++i) {
    switch (type) {
      case GgmlType::Q8_0:
        finite_field<BlockQ8_0>(bytes, i, offsetof(BlockQ8_0, d));
        break;
      case GgmlType::Q2_K:
        finite_field<BlockQ2K>(bytes, i, offsetof(BlockQ2K, d));
        finite_field<BlockQ2K>(bytes, i, offsetof(BlockQ2K, dmin));
        break;
      case GgmlType::Q4_K:
        finite_field<BlockQ4K>(bytes, i, offsetof(BlockQ4K, d));
        finite_field<BlockQ4K>(bytes, i, offsetof(BlockQ4K, dmin));
        break;
      case GgmlType::Q5_K:
        finite_field<BlockQ5K>(bytes, i, offsetof(BlockQ5K, d));
        finite_field<BlockQ5K>(bytes, i, offsetof(BlockQ5K, dmin));
        break;
      case GgmlType::Q6_K:
        finite_field<BlockQ6K>(bytes, i, offsetof(BlockQ6K, d));
        break;
      case GgmlType::IQ2_XXS:
        finite_field<BlockIQ2XXS>(bytes, i, offsetof(BlockIQ2XXS, d));
        break;
      case GgmlType::IQ2_XS:
        finite_field<BlockIQ2XS>(bytes, i, offsetof(BlockIQ2XS, d));
        break;
      case GgmlType::IQ1_S:
        finite_field<BlockIQ1S>(bytes, i, offsetof(BlockIQ1S, d));
        break;
      case GgmlType::IQ1_M: {
        // d16's exponent top bit (bit 14) is bit 14 of the last scale word.
        uint16_t words[4];
        uint8_t* scales = bytes.data() + i * type_size + offsetof(BlockIQ1M, scales);
        std::memcpy(words, scales, sizeof(words));
        if ((iq1m_block_scale_bits(words) & 0x7C00) == 0x7C00)
          words[3] &= static_cast<uint16_t>(~0x4000);
        std::memcpy(scales, words, sizeof(words));
        break;
      }
      default:
        break;  // MXFP4 scales (E8M0) and float types need no fixing
    }
  }
  return bytes;
}

inline std::vector<float> gaussian_row(size_t n, float sigma, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> row(n);
  for (float& v : row) v = normal(rng);
  return row;
}

}  // namespace v4::kernels::test
