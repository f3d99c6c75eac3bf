// The model `v4serve serve` runs: the file a user names, or else the `tiny` synthetic model,
// generated once into the user's cache directory so that a first run works without weights.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "model/v4/v4_forward_model.h"

namespace v4::apps {

// $XDG_CACHE_HOME/v4serve/models (or ~/.cache/v4serve/models)/tiny-ds4-q2.gguf, generated
// with a progress bar when missing.
Result<std::string> default_model_path();

// The file `--model` names, or default_model_path() when it names none.
Result<std::string> model_path_or_default(const std::string& model_flag);

// Opens and binds the model, then reads every weight page once with a progress bar, so that
// the first requests do not pay for page faults on a cold file. `mtp_path`: ds4's separate MTP
// file, or empty.
Result<std::unique_ptr<V4Model>> load_model_with_progress(const std::string& path,
                                                          const std::string& mtp_path = "");

}  // namespace v4::apps
