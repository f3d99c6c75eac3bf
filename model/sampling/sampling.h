// Token sampling from logits: temperature, top-k, top-p (nucleus) and min-p filters, seeded.
// Temperature 0 is greedy (argmax, lowest id on ties).
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace v4 {

struct SamplingOptions {
  float temperature = 1.0f;
  float top_p = 1.0f;  // 1: off
  int32_t top_k = 0;   // 0: off
  float min_p = 0.0f;  // 0: off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}
  int32_t sample(std::span<const float> logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

int32_t argmax(std::span<const float> logits);

}  // namespace v4
