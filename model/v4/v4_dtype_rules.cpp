#include "model/v4/v4_dtype_rules.h"

#include "kernels/cpu/quant.h"

namespace v4 {

std::optional<Recipe> recipe_from_name(std::string_view name) {
  if (name == "ds4-q2") return Recipe::kDs4Q2;
  if (name == "ds4-q4") return Recipe::kDs4Q4;
  if (name == "lcpp-mxfp4") return Recipe::kLlamaCppMxfp4;
  if (name == "f32") return Recipe::kF32;
  return std::nullopt;
}

std::string_view recipe_name(Recipe recipe) {
  switch (recipe) {
    case Recipe::kDs4Q2:
      return "ds4-q2";
    case Recipe::kDs4Q4:
      return "ds4-q4";
    case Recipe::kLlamaCppMxfp4:
      return "lcpp-mxfp4";
    case Recipe::kF32:
      return "f32";
  }
  return "?";
}

GgmlType recipe_dtype(Recipe recipe, TensorRole role) {
  if (role == TensorRole::kHashTable) return GgmlType::I32;
  if (role == TensorRole::kSmall || recipe == Recipe::kF32) return GgmlType::F32;
  if (recipe == Recipe::kLlamaCppMxfp4) {
    // The converter keeps source precisions: FP8 sources become Q8_0, BF16 sources stay BF16,
    // F32 sources stay F32, FP4 experts are repacked to MXFP4 (spec §5.6).
    switch (role) {
      case TensorRole::kAttnProjection:
      case TensorRole::kIndexerQuery:
      case TensorRole::kSharedExpert:
      case TensorRole::kMtpProjection:
        return GgmlType::Q8_0;
      case TensorRole::kHcFn:
      case TensorRole::kCompressorApe:
        return GgmlType::F32;
      case TensorRole::kExpertGateUp:
      case TensorRole::kExpertDown:
        return GgmlType::MXFP4;
      default:
        return GgmlType::BF16;
    }
  }
  // ds4 layouts: the first accepted type of each role, experts by variant (§5.4).
  if (role == TensorRole::kExpertGateUp) {
    return recipe == Recipe::kDs4Q2 ? GgmlType::IQ2_XXS : GgmlType::Q4_K;
  }
  if (role == TensorRole::kExpertDown) {
    return recipe == Recipe::kDs4Q2 ? GgmlType::Q2_K : GgmlType::Q4_K;
  }
  return ds4_accepted_dtypes(role, false).front();
}

std::vector<GgmlType> ds4_accepted_dtypes(TensorRole role, bool mtp) {
  switch (role) {
    case TensorRole::kEmbedding:
      return {GgmlType::F16};
    case TensorRole::kOutput:
      return {GgmlType::Q8_0};
    case TensorRole::kHcFn:
    case TensorRole::kRouter:
      return mtp ? std::vector{GgmlType::F16, GgmlType::F32} : std::vector{GgmlType::F16};
    case TensorRole::kSmall:
      return {GgmlType::F32};
    case TensorRole::kAttnProjection:
    case TensorRole::kSharedExpert:
    case TensorRole::kMtpProjection:
      return {GgmlType::Q8_0};
    case TensorRole::kCompressorApe:
    case TensorRole::kCompressorProjection:
    case TensorRole::kIndexerQuery:
    case TensorRole::kIndexerProjection:
      return {GgmlType::F16};
    case TensorRole::kHashTable:
      return {GgmlType::I32};
    case TensorRole::kExpertGateUp:
    case TensorRole::kExpertDown:
      return {GgmlType::IQ2_XXS, GgmlType::Q2_K, GgmlType::Q4_K};
  }
  return {};
}

bool loader_accepts_dtype(TensorRole role, GgmlType type) {
  if (role == TensorRole::kHashTable) return type == GgmlType::I32 || type == GgmlType::I64;
  if (role == TensorRole::kSmall) {
    return type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16;
  }
  // Matrices: any weight format the CPU kernels read (spec §6).
  return kernels::can_dequantize(type);
}

}  // namespace v4
