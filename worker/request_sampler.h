// Per-request token choice: OpenAI/vLLM logit processing (logit bias, presence/frequency
// penalties over the output, repetition penalty over prompt and output, then the guided-choice
// mask) in front of model/sampling/sampling.h's Sampler, with its own seeded RNG so a request's
// draws depend only on its own logits, never on which requests share the step.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/status.h"
#include "kernels/cpu/draw_weight.h"
#include "model/grammar/dsml_tool_matcher.h"
#include "model/grammar/grammar_matcher.h"
#include "model/sampling/sampling.h"
#include "worker/guided_choice.h"
#include "worker/token_vocabulary.h"

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
  // Set: the logprobs of every prompt token after the first, with this many alternatives each,
  // from the raw logits (worker/prompt_logprobs.h). The request then takes no prefix-cache hits.
  std::optional<uint32_t> prompt_logprobs;
  // Guided choice: when not empty, the output is exactly one of these sequences followed by
  // stop_token_ids[0]; with no stop token the request ends (kStop) once a sequence is complete.
  // Logprobs are those of the masked distribution, so top_logprobs lists allowed tokens only.
  std::vector<std::vector<int32_t>> allowed_outputs;
  // Structured output (model/grammar/json_grammar.h): the output is text the grammar admits,
  // then stop_token_ids[0], which may come only once the text is a complete value (and must
  // come once nothing else may); with no stop token the request ends (kStop) when nothing may
  // follow. `constraint_source`: the JSON schema text for kJsonSchema. kDsmlTools (strict
  // function tools): the source is model/grammar/dsml_tool_grammar.h's JSON; the output may be
  // free text until it opens a tool-call block, which then follows the grammar to the end token.
  OutputConstraintKind constraint = OutputConstraintKind::kNone;
  std::string constraint_source;
};

// Rejects a constraint that does not compile or that has no vocabulary to mask.
Status validate_output_constraint(const SamplingParams& params, const TokenVocabulary* vocabulary);

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
  // `vocabulary`: the token bytes a structured-output constraint masks with (may be null for
  // requests without one).
  explicit RequestSampler(const SamplingParams& params,
                          std::shared_ptr<const TokenVocabulary> vocabulary = nullptr);

  // Tokens the request's stream contains (prompt and recomputed output); the repetition penalty
  // applies to all of them. Idempotent, so recompute after preemption changes nothing.
  void observe(std::span<const int32_t> tokens);
  SampledChoice sample(std::span<const float> logits);
  // How many of its row's best tokens the next token needs when the forward returns those
  // instead of the row (V4Forward's top_candidates, selected where the logits are), or 0 when
  // it needs the row: logit bias, penalties, a constraint or guided choice, or sampling without
  // a top-k of at most kMaxTopCandidates. Enough for the choice and its logprobs.
  uint32_t candidates_needed() const;
  // The backend's draw of the next token (SequenceInput::draw) for a request that samples over
  // its whole row (no top-k) with nothing done to the row first (no bias, penalty, constraint
  // or guided choice): its filters and the draw's random bits. Empty when the choice needs
  // the row here, or top logprobs beyond kMaxTopCandidates.
  std::optional<kernels::RowDrawParams> row_draw() const;
  // The best tokens a drawn request needs beside its token: enough for its top logprobs, and
  // one to bring the row's log-normalizer (0 without logprobs).
  uint32_t logprob_candidates() const;
  // sample() given the token the backend drew with row_draw() and its logit, and, for
  // logprobs, the row's best tokens (logprob_candidates() of them) and log Σ exp(logit): the
  // same choice and logprobs.
  SampledChoice sample_drawn(int32_t token, float token_logit, std::span<const int32_t> ids,
                             std::span<const float> logits, double log_normalizer);
  // Whether its tokens carry logprobs (sample_candidates then needs the row's log-normalizer).
  bool wants_logprobs() const { return params_.logprobs || params_.top_logprobs > 0; }
  // sample() from the row's best tokens (best first, as many as candidates_needed asked for,
  // id -1 past the row's orderable ones) and its log Σ exp(logit): the same choice and logprobs.
  SampledChoice sample_candidates(std::span<const int32_t> ids, std::span<const float> logits,
                                  double log_normalizer);
  // The request resumes after `output`, tokens it already produced (elsewhere): penalties,
  // guided choice, the output count and the random draws continue as if it had sampled them.
  void resume(std::span<const int32_t> output);

  const SamplingParams& params() const { return params_; }
  uint32_t generated() const { return generated_; }
  // The output is one of allowed_outputs, or a structured output nothing may follow, and no
  // stop token is there to follow it: it is done.
  bool guided_complete() const;

 private:
  void process(std::vector<float>& logits) const;
  // Nothing changes the row before the choice: no bias, penalty, constraint or guided choice.
  bool row_untouched() const;
  // The top logprobs of a choice from the row's best tokens (id -1 past its orderable ones).
  void add_top_logprobs(std::span<const int32_t> ids, std::span<const float> logits,
                        double log_normalizer, SampledChoice& c) const;
  SampledChoice choose(std::span<const float> logits);
  // Token ids the structured-output constraint allows next, ascending (the end token included
  // when the output may end).
  std::vector<int32_t> constrained_allowed(size_t n_logits);
  void advance_constraint(int32_t token);
  // The bookkeeping of a sampled token: penalties' counts, guided choice, the constraint.
  void record(int32_t token);

  SamplingParams params_;
  Sampler sampler_;
  GuidedChoice guided_;
  std::shared_ptr<const TokenVocabulary> vocabulary_;
  std::optional<GrammarMatcher> matcher_;
  std::optional<DsmlToolMatcher> tools_;
  std::vector<uint64_t> mask_bits_;
  std::unordered_set<int32_t> seen_;
  std::unordered_map<int32_t, uint32_t> output_counts_;
  uint32_t generated_ = 0;
};

}  // namespace v4
