// Per-request token choice: OpenAI/vLLM logit processing (logit bias, presence/frequency
// penalties over the output, repetition penalty over prompt and output) in front of
// model/sampling.h's Sampler, with its own seeded RNG so a request's draws depend only on its
// own logits, never on which requests share the step.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "model/sampling.h"

namespace v4 {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax, lowest id on ties)
  float top_p = 1.0f;
  int32_t top_k = 0;
  float min_p = 0.0f;
  uint64_t seed = 0;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repetition_penalty = 1.0f;  // 1: off
  std::vector<std::pair<int32_t, float>> logit_bias;
  std::vector<int32_t> stop_token_ids;
  uint32_t max_tokens = 16;
  bool logprobs = false;
  uint32_t top_logprobs = 0;
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

struct SampledChoice {
  int32_t token = 0;
  float logprob = 0.0f;  // of the chosen token under the processed logits (temperature 1)
  std::vector<TokenLogprob> top_logprobs;
};

class RequestSampler {
 public:
  explicit RequestSampler(const SamplingParams& params);

  // Tokens the request's stream contains (prompt and recomputed output); the repetition penalty
  // applies to all of them. Idempotent, so recompute after preemption changes nothing.
  void observe(std::span<const int32_t> tokens);
  SampledChoice sample(std::span<const float> logits);

  const SamplingParams& params() const { return params_; }
  uint32_t generated() const { return generated_; }

 private:
  void process(std::vector<float>& logits) const;

  SamplingParams params_;
  Sampler sampler_;
  std::unordered_set<int32_t> seen_;
  std::unordered_map<int32_t, uint32_t> output_counts_;
  uint32_t generated_ = 0;
};

}  // namespace v4
