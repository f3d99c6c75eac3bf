#include "core/ggml_type.h"

#include <array>

namespace v4 {
namespace {

struct Entry {
  uint32_t id;
  GgmlTypeTraits traits;
};

constexpr uint32_t kQK_K = 256;

// Mirrors ggml's type table (gguf-py GGML_QUANT_SIZES).
constexpr std::array<Entry, 34> kTypes{{
    {0, {"F32", 1, 4}},
    {1, {"F16", 1, 2}},
    {2, {"Q4_0", 32, 2 + 16}},
    {3, {"Q4_1", 32, 2 + 2 + 16}},
    {6, {"Q5_0", 32, 2 + 4 + 16}},
    {7, {"Q5_1", 32, 2 + 2 + 4 + 16}},
    {8, {"Q8_0", 32, 2 + 32}},
    {9, {"Q8_1", 32, 4 + 4 + 32}},
    {10, {"Q2_K", kQK_K, 2 + 2 + kQK_K / 16 + kQK_K / 4}},
    {11, {"Q3_K", kQK_K, 2 + kQK_K / 4 + kQK_K / 8 + 12}},
    {12, {"Q4_K", kQK_K, 2 + 2 + kQK_K / 2 + 12}},
    {13, {"Q5_K", kQK_K, 2 + 2 + kQK_K / 2 + kQK_K / 8 + 12}},
    {14, {"Q6_K", kQK_K, 2 + kQK_K / 2 + kQK_K / 4 + kQK_K / 16}},
    {15, {"Q8_K", kQK_K, 4 + kQK_K + kQK_K / 8}},
    {16, {"IQ2_XXS", kQK_K, 2 + kQK_K / 4}},
    {17, {"IQ2_XS", kQK_K, 2 + kQK_K / 4 + kQK_K / 32}},
    {18, {"IQ3_XXS", kQK_K, 2 + kQK_K / 4 + kQK_K / 8}},
    {19, {"IQ1_S", kQK_K, 2 + kQK_K / 8 + kQK_K / 16}},
    {20, {"IQ4_NL", 32, 2 + 16}},
    {21, {"IQ3_S", kQK_K, 2 + kQK_K / 4 + kQK_K / 8 + kQK_K / 32 + 4}},
    {22, {"IQ2_S", kQK_K, 2 + kQK_K / 4 + kQK_K / 16}},
    {23, {"IQ4_XS", kQK_K, 2 + 2 + kQK_K / 2 + kQK_K / 64}},
    {24, {"I8", 1, 1}},
    {25, {"I16", 1, 2}},
    {26, {"I32", 1, 4}},
    {27, {"I64", 1, 8}},
    {28, {"F64", 1, 8}},
    {29, {"IQ1_M", kQK_K, kQK_K / 8 + kQK_K / 16 + kQK_K / 32}},
    {30, {"BF16", 1, 2}},
    {34, {"TQ1_0", kQK_K, 2 + 4 * 13}},
    {35, {"TQ2_0", kQK_K, 2 + 64}},
    {39, {"MXFP4", 32, 1 + 16}},
    {40, {"NVFP4", 64, 4 + 32}},
    {41, {"Q1_0", 128, 2 + 16}},
}};

}  // namespace

std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type_id) {
  // Indexed by id: the dot-product kernels ask once per weight row.
  static const auto by_id = [] {
    std::array<std::optional<GgmlTypeTraits>, 64> table{};
    for (const Entry& e : kTypes) {
      if (e.id < table.size()) table[e.id] = e.traits;
    }
    return table;
  }();
  if (type_id < by_id.size()) return by_id[type_id];
  return std::nullopt;
}

GgmlTypeTraits ggml_type_traits(GgmlType type) {
  return *ggml_type_traits(static_cast<uint32_t>(type));
}

std::string_view ggml_type_name(GgmlType type) { return ggml_type_traits(type).name; }

std::optional<GgmlType> ggml_type_from_name(std::string_view name) {
  for (const Entry& e : kTypes) {
    if (e.traits.name == name) return static_cast<GgmlType>(e.id);
  }
  return std::nullopt;
}

std::optional<uint64_t> ggml_row_size(GgmlType type, uint64_t n) {
  const GgmlTypeTraits t = ggml_type_traits(type);
  if (n % t.block_size != 0) return std::nullopt;
  return n / t.block_size * t.type_size;
}

}  // namespace v4
