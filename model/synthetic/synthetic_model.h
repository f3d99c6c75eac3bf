// Synthetic DeepSeek-V4 models: the real architecture and tokenizer with seeded random weights,
// for tests and benchmarks where the real weights (80–280 GiB) are out of reach. Weights are
// scaled so activations stay in a sane range through every layer (unit-variance projections,
// norms near 1, small hyper-connection and router biases).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/gguf/gguf_writer.h"
#include "model/v4/v4_config.h"
#include "model/v4/v4_dtype_rules.h"

namespace v4 {

// Presets: "tiny" (every layer kind in 6 layers, seconds to write), "small" (hundreds of MB) and
// "flash-shape" (the real per-layer dimensions of spec §1; `layers` and `experts` choose how
// many). `layers`/`experts` of 0 keep the preset's own counts.
Result<V4Config> synthetic_preset(std::string_view preset, uint32_t layers = 0,
                                  uint32_t experts = 0);

struct SyntheticModelOptions {
  V4Config config;
  Recipe recipe = Recipe::kF32;
  std::string out_path;
  std::string tokenizer_json;  // HF tokenizer.json with the DeepSeek V3/V4 vocabulary
  uint64_t seed = 1234;
  MtpLayout mtp = MtpLayout::kNone;  // kDs4 writes a second file "<out stem>-mtp.gguf"
  // A model whose MTP block agrees with it, to measure what speculative decoding can gain when
  // drafts are right (docs/design.md): every block's output projections (attention output,
  // expert and shared-expert down) are scaled by 1e-3, so the main model's next token is nearly
  // a function of the current token alone; the MTP block passes the embedding of its input
  // token through (e_proj identity, h_proj zero, enorm one) and uses the main HC head and
  // output norm, so it predicts that same function one token later. Off: the random weights.
  bool mtp_agrees = false;
  uint64_t max_split_bytes = 0;
  unsigned threads = 0;  // 0: one per core
  std::function<void(const GgufWriteProgress&)> progress;
};

// Writes the model; returns the paths written (parts of a split file, then the ds4 MTP file).
Result<std::vector<std::string>> write_synthetic_model(const SyntheticModelOptions& options);

// The float value of element `index` of tensor `name` as generated with `seed`, before
// quantization (lets tests check written data without storing it).
float synthetic_weight(const std::string& name, TensorRole role, uint64_t fan_in, uint64_t seed,
                       uint64_t index);

}  // namespace v4
