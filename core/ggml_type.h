// The ggml tensor element types a GGUF file can name, with their block geometry.
// Spec §5.1 (type ids) and §6 (block sizes); ids and sizes follow ggml's own table.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace v4 {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
};

struct GgmlTypeTraits {
  std::string_view name;
  uint32_t block_size;  // values per block
  uint32_t type_size;   // bytes per block
};

// Traits of a known type id; nullopt for ids ggml does not define.
std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type_id);
GgmlTypeTraits ggml_type_traits(GgmlType type);

std::string_view ggml_type_name(GgmlType type);
std::optional<GgmlType> ggml_type_from_name(std::string_view name);

// Bytes of one row of `n` values; nullopt when n is not a multiple of the block size.
std::optional<uint64_t> ggml_row_size(GgmlType type, uint64_t n);

}  // namespace v4
