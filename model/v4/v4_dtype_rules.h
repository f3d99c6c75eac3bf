// Which ggml types each V4 tensor role may have: the recipes our generator writes, ds4's strict
// layout rules (spec §5.4) and what a tolerant loader accepts (spec §5.6).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "core/ggml_type.h"
#include "model/v4/v4_schema.h"

namespace v4 {

// Generator recipes: ds4's two published layouts, the llama.cpp MXFP4 family, and all-F32 for
// exact numerical checks.
enum class Recipe { kDs4Q2, kDs4Q4, kLlamaCppMxfp4, kF32 };

std::optional<Recipe> recipe_from_name(std::string_view name);
std::string_view recipe_name(Recipe recipe);

GgmlType recipe_dtype(Recipe recipe, TensorRole role);

// The types ds4's loader accepts for a role; `mtp` relaxes hc_head_fn and the router to F16/F32
// as ds4's MTP validator does (§5.5).
std::vector<GgmlType> ds4_accepted_dtypes(TensorRole role, bool mtp);

// Whether a tolerant loader (ours) accepts the type for the role.
bool loader_accepts_dtype(TensorRole role, GgmlType type);

}  // namespace v4
