// `bench --synthetic PRESET`: a full-scale model for speed measurements without a full-scale
// file. A small template (every layer kind, a few routed experts) is written to a temporary
// GGUF and scaled up to the asked layer and expert counts as the device copy is made
// (model/synthetic/replicated_weights.h), so a GPU with a small disk measures the real model's
// bytes per token.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "core/status.h"
#include "model/synthetic/replicated_weights.h"
#include "model/v4/v4_forward_model.h"

namespace v4::apps {

struct SyntheticBenchSpec {
  std::string preset = "flash-shape";
  uint32_t layers = 0;   // 0: the preset's
  uint32_t experts = 0;  // 0: the preset's
  uint32_t template_experts = 16;
  std::string recipe = "ds4-q2";
  uint64_t seed = 1234;
  unsigned threads = 0;
};

class SyntheticBenchModel {
 public:
  ~SyntheticBenchModel();
  const V4Model& template_model() const { return *template_; }
  const ReplicatedWeights& scaled() const { return scaled_; }
  uint32_t template_layers() const { return template_layers_; }
  // One line for the report: what was generated and how it was scaled.
  std::string describe() const;
  // Keeps the first `n` layers (bench --layers fit, on a device too small for all of them); the
  // report then says how many were asked for.
  void keep_layers(uint32_t n);

  static Result<std::unique_ptr<SyntheticBenchModel>> create(const SyntheticBenchSpec& spec);

 private:
  SyntheticBenchSpec spec_;
  std::filesystem::path dir_;
  std::unique_ptr<V4Model> template_;
  ReplicatedWeights scaled_;
  uint32_t template_layers_ = 0;
  uint32_t asked_layers_ = 0;  // before keep_layers
  double write_seconds_ = 0;
};

}  // namespace v4::apps
