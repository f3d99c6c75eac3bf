// A DeepSeek-V4 GGUF opened for inference: the mapped file(s), the config and the bound weights
// in one owner, so callers cannot let the mapping die before the weights that point into it.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "model/gguf/gguf_reader.h"
#include "model/v4/v4_weights.h"

namespace v4 {

struct V4Model {
  GgufFile file;
  std::optional<GgufFile> mtp_file;
  V4Weights weights;
};

// Opens `path` (split sets included) and binds its weights; `mtp_path` optionally names ds4's
// separate MTP file. `overrides` change the file's hyperparameters before binding.
Result<std::unique_ptr<V4Model>> load_v4_model(const std::string& path,
                                               const std::string& mtp_path = "",
                                               const V4ConfigOverrides& overrides = {});

}  // namespace v4
