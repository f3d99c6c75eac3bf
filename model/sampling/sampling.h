// Token sampling from logits: temperature, top-k, top-p (nucleus) and min-p filters, seeded.
// Temperature 0 is greedy (argmax, lowest id on ties). The random draw of output token i is a
// pure function of (seed, i) (a counter-based generator, as Philox is for cuRAND), so a request
// resumed at token i elsewhere draws exactly what it would have drawn (docs/design.md,
// resumable requests).
#pragma once

#include <cstdint>
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
  explicit Sampler(const SamplingOptions& options) : options_(options) {}
  // Samples output token number token_index() and advances the index.
  int32_t sample(std::span<const float> logits);
  uint64_t token_index() const { return token_index_; }
  // The next sample() is output token `index` (a request resumed after `index` tokens).
  void seek(uint64_t index) { token_index_ = index; }

 private:
  SamplingOptions options_;
  uint64_t token_index_ = 0;
};

// Uniform in [0, 1) from (seed, index): two rounds of SplitMix64's finalizer over the pair,
// with 53 bits of the result as the mantissa. Every (seed, index) is an independent draw.
double counter_uniform(uint64_t seed, uint64_t index);

int32_t argmax(std::span<const float> logits);

}  // namespace v4
