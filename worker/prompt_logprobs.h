// Prompt logprobs (vLLM's `prompt_logprobs`, OpenAI completions' echo with logprobs): for every
// prompt token after the first, its log-probability given the tokens before it and the most
// likely alternatives, from the raw logits (temperature 1, no penalties or bias), as vLLM
// reports them. Prompt token i is scored by the logits row of position i - 1, so the rows of
// one prefill chunk score the tokens one position later, the last of them in the next chunk.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "worker/request_sampler.h"

namespace v4 {

// One prompt token's score: `logprob` of `token`, and the `top` most likely tokens at its
// position (highest first, lower id first on ties). `rank` is vLLM's: 1 + the number of tokens
// more likely than `token`.
struct PromptTokenLogprobs {
  int32_t token = 0;
  float logprob = 0.0f;
  uint32_t rank = 1;
  std::vector<TokenLogprob> top;
};

// log_softmax(logits)[token] and the `top` largest entries of log_softmax(logits).
PromptTokenLogprobs score_token(std::span<const float> logits, int32_t token, size_t top);

// Collects a request's prompt logprobs from the logits rows of its prefill chunks. Chunks may
// come in any size; a chunk seen again (recompute after preemption) overwrites its entries
// with the same values, the forward being invariant to chunking and batching.
class PromptLogprobsCollector {
 public:
  PromptLogprobsCollector(std::vector<int32_t> prompt, uint32_t top);

  // Whether a chunk starting at `first_position` has rows that score prompt tokens.
  bool wants(uint64_t first_position) const { return first_position + 1 < prompt_.size(); }
  // `logits` holds one n_vocab row per token of the chunk starting at `first_position`.
  void add_rows(uint64_t first_position, std::span<const float> logits, size_t n_vocab);
  // Every prompt token after the first has its entry.
  bool complete() const { return scored_ + 1 >= prompt_.size(); }
  // Entries for prompt tokens 1 .. prompt.size() - 1, in order.
  std::vector<PromptTokenLogprobs> take() { return std::move(entries_); }

 private:
  std::vector<int32_t> prompt_;
  uint32_t top_;
  std::vector<PromptTokenLogprobs> entries_;  // [i]: prompt token i + 1
  size_t scored_ = 0;                         // entries filled from the front
};

}  // namespace v4
