// Token sampling from logits: temperature, top-k, top-p (nucleus) and min-p filters, seeded.
// Temperature 0 is greedy (argmax, lowest id on ties). The random draw of output token i is a
// pure function of (seed, i) (a counter-based generator, as Philox is for cuRAND), so a request
// resumed at token i elsewhere draws exactly what it would have drawn (docs/design.md,
// resumable requests). With a top-k the draw is over the k best tokens, sorted; without one it
// is over the whole row, which it never sorts (kernels/cpu/whole_row_draw.h).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "kernels/cpu/draw_weight.h"

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
  // Whether sample_ranked can take a row's n best tokens instead of the row: greedy needs the
  // best one, sampling a top-k of at most n (every filter then acts on those k alone).
  bool samples_from_best(size_t n) const;
  // sample() given only the row's best tokens in sampling's order (logit descending, lower id
  // first; kernels/cpu/token_candidates.h), as many as samples_from_best asked for: the same
  // token sample() takes from the whole row.
  int32_t sample_ranked(std::span<const int32_t> ids, std::span<const float> logits);
  // When the next token is drawn from the whole row (sampling without a top-k), that draw:
  // the filters and the token index's random bits, which sample() passes to
  // kernels::draw_whole_row and a backend's draw_rows takes. Empty otherwise.
  std::optional<kernels::RowDrawParams> whole_row_draw() const;
  uint64_t token_index() const { return token_index_; }
  // The next sample() is output token `index` (a request resumed after `index` tokens).
  void seek(uint64_t index) { token_index_ = index; }

 private:
  // The draw of output token `index` among the kept candidates, best first.
  int32_t draw(std::span<const int32_t> ids, std::span<const float> logits, uint64_t index) const;

  SamplingOptions options_;
  uint64_t token_index_ = 0;
};

// The 53 random bits of draw (seed, index); counter_uniform is them times 2^-53.
uint64_t counter_bits53(uint64_t seed, uint64_t index);

// Uniform in [0, 1) from (seed, index): two rounds of SplitMix64's finalizer over the pair,
// with 53 bits of the result as the mantissa. Every (seed, index) is an independent draw.
double counter_uniform(uint64_t seed, uint64_t index);

int32_t argmax(std::span<const float> logits);

}  // namespace v4
