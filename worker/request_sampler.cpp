#include "worker/request_sampler.h"

#include <algorithm>

#include "model/v4/v4_forward.h"
#include "worker/dsml_token_mask.h"
#include "worker/grammar_token_mask.h"
#include "worker/prompt_logprobs.h"

namespace v4 {
namespace {

SamplingOptions sampler_options(const SamplingParams& p) {
  SamplingOptions o;
  o.temperature = p.temperature;
  o.top_p = p.top_p;
  o.top_k = p.top_k;
  o.min_p = p.min_p;
  o.seed = p.seed;
  return o;
}

std::optional<int32_t> end_token(const SamplingParams& p) {
  if (p.stop_token_ids.empty()) return std::nullopt;
  return p.stop_token_ids.front();
}

}  // namespace

Status validate_output_constraint(const SamplingParams& p, const TokenVocabulary* vocabulary) {
  if (p.constraint == OutputConstraintKind::kNone) return Status::ok();
  if (vocabulary == nullptr)
    return Status::error("this engine has no token vocabulary for structured outputs");
  if (!p.allowed_outputs.empty())
    return Status::error("a structured output cannot be combined with allowed outputs");
  if (p.constraint == OutputConstraintKind::kDsmlTools) {
    Result<DsmlToolGrammar> tools = compile_dsml_tool_grammar(p.constraint_source);
    if (!tools) return Status::error("strict tools: " + tools.message());
    if (static_cast<size_t>(tools->marker_token) >= vocabulary->size())
      return Status::error("strict tools: marker token outside the vocabulary");
  } else {
    Result<JsonGrammar> grammar = compile_output_constraint(p.constraint, p.constraint_source);
    if (!grammar) return Status::error("structured output: " + grammar.message());
  }
  if (!p.stop_token_ids.empty()) {
    const int32_t end = p.stop_token_ids.front();
    if (end < 0 || static_cast<size_t>(end) >= vocabulary->size())
      return Status::error("stop token id " + std::to_string(end) + " outside the vocabulary");
  }
  return Status::ok();
}

RequestSampler::RequestSampler(const SamplingParams& params,
                               std::shared_ptr<const TokenVocabulary> vocabulary)
    : params_(params),
      sampler_(sampler_options(params)),
      guided_(params.allowed_outputs, end_token(params)),
      vocabulary_(std::move(vocabulary)) {
  if (params.constraint == OutputConstraintKind::kNone || !vocabulary_) return;
  // EngineCore::validate has compiled it once already; a failure here leaves it unconstrained.
  if (params.constraint == OutputConstraintKind::kDsmlTools) {
    Result<DsmlToolGrammar> tools = compile_dsml_tool_grammar(params.constraint_source);
    if (tools) tools_.emplace(std::make_shared<const DsmlToolGrammar>(std::move(*tools)));
    return;
  }
  Result<JsonGrammar> grammar =
      compile_output_constraint(params.constraint, params.constraint_source);
  if (grammar) matcher_.emplace(std::make_shared<const JsonGrammar>(std::move(*grammar)));
}

bool RequestSampler::guided_complete() const {
  if (!params_.stop_token_ids.empty()) return false;
  return (guided_.active() && guided_.complete()) || (matcher_ && matcher_->complete()) ||
         (tools_ && tools_->complete());
}

std::vector<int32_t> RequestSampler::constrained_allowed(size_t n_logits) {
  const std::optional<int32_t> end = end_token(params_);
  std::vector<int32_t> ids;
  bool accepting = false;
  if (tools_) {
    // Strict tools: free text takes no mask (an empty list samples from every token).
    if (!dsml_allowed_token_bits(*tools_, *vocabulary_, mask_bits_)) return ids;
    accepting = tools_->accepting();
  } else {
    accepting = matcher_->accepting();
    mask_bits_.clear();
    if (!matcher_->complete()) allowed_token_bits(*matcher_, *vocabulary_, mask_bits_);
  }
  for (size_t w = 0; w < mask_bits_.size(); ++w)
    for (uint64_t m = mask_bits_[w]; m; m &= m - 1)
      ids.push_back(static_cast<int32_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(m))));
  std::erase_if(ids, [&](int32_t t) { return static_cast<size_t>(t) >= n_logits; });
  if (end && (accepting || ids.empty())) {
    ids.insert(std::lower_bound(ids.begin(), ids.end(), *end), *end);
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  }
  return ids;
}

void RequestSampler::advance_constraint(int32_t token) {
  if (!matcher_ && !tools_) return;
  const std::optional<int32_t> end = end_token(params_);
  if ((end && token == *end) || token < 0 || static_cast<size_t>(token) >= vocabulary_->size())
    return;
  if (tools_) {
    tools_->advance_token(token, vocabulary_->bytes(token), vocabulary_->is_text(token));
    return;
  }
  matcher_->advance(vocabulary_->bytes(token));
}

void RequestSampler::observe(std::span<const int32_t> tokens) {
  if (params_.repetition_penalty == 1.0f) return;
  seen_.insert(tokens.begin(), tokens.end());
}

void RequestSampler::process(std::vector<float>& logits) const {
  const auto n = static_cast<int32_t>(logits.size());
  for (const auto& [token, bias] : params_.logit_bias)
    if (token >= 0 && token < n) logits[static_cast<size_t>(token)] += bias;
  // Repetition penalty as in CTRL/HF: shrink positive logits, grow negative ones.
  if (params_.repetition_penalty != 1.0f) {
    for (int32_t t : seen_) {
      if (t < 0 || t >= n) continue;
      float& l = logits[static_cast<size_t>(t)];
      l = l > 0.0f ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  for (const auto& [t, count] : output_counts_) {
    if (t < 0 || t >= n) continue;
    logits[static_cast<size_t>(t)] -=
        params_.presence_penalty + params_.frequency_penalty * static_cast<float>(count);
  }
}

// Token choice over `logits`, whose index i is token i (the caller maps indices to ids).
SampledChoice RequestSampler::choose(std::span<const float> logits) {
  SampledChoice c;
  c.token = sampler_.sample(logits);
  if (!params_.logprobs && params_.top_logprobs == 0) return c;
  PromptTokenLogprobs scored = score_token(logits, c.token, params_.top_logprobs);
  c.logprob = scored.logprob;
  c.top_logprobs = std::move(scored.top);
  return c;
}

void RequestSampler::resume(std::span<const int32_t> output) {
  for (int32_t t : output) {
    ++output_counts_[t];
    if (params_.repetition_penalty != 1.0f) seen_.insert(t);
    if (guided_.active()) guided_.advance(t);
    advance_constraint(t);
    ++generated_;
  }
  sampler_.seek(generated_);
}

SampledChoice RequestSampler::sample(std::span<const float> raw) {
  std::vector<float> logits(raw.begin(), raw.end());
  process(logits);
  // Guided choice masks last (after bias and penalties). Sampling over the allowed tokens alone,
  // in ascending id order, is sampling from the masked distribution: masked tokens have
  // probability 0, ties still go to the lower id, and the RNG draws are the same. (Ids outside
  // the logits are dropped; EngineCore::validate rejects them, so the mask is never empty.)
  std::vector<int32_t> allowed;
  if (guided_.active()) {
    allowed = guided_.allowed();
    std::erase_if(allowed,
                  [&](int32_t t) { return t < 0 || static_cast<size_t>(t) >= raw.size(); });
  } else if (matcher_ || tools_) {
    allowed = constrained_allowed(raw.size());
  }
  SampledChoice c;
  if (allowed.empty()) {
    c = choose(logits);
  } else {
    std::vector<float> kept(allowed.size());
    for (size_t i = 0; i < allowed.size(); ++i) kept[i] = logits[static_cast<size_t>(allowed[i])];
    c = choose(kept);
    c.token = allowed[static_cast<size_t>(c.token)];
    for (TokenLogprob& t : c.top_logprobs) t.token = allowed[static_cast<size_t>(t.token)];
  }
  record(c.token);
  return c;
}

void RequestSampler::record(int32_t token) {
  ++output_counts_[token];
  if (params_.repetition_penalty != 1.0f) seen_.insert(token);
  if (guided_.active()) guided_.advance(token);
  advance_constraint(token);
  ++generated_;
}

bool RequestSampler::row_untouched() const {
  const SamplingParams& p = params_;
  const bool processed = !p.logit_bias.empty() || p.repetition_penalty != 1.0f ||
                         p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  return !processed && !guided_.active() && !matcher_ && !tools_;
}

uint32_t RequestSampler::candidates_needed() const {
  const SamplingParams& p = params_;
  if (!row_untouched()) return 0;
  const uint32_t need =
      std::max<uint32_t>({1u, p.top_logprobs,
                          p.temperature > 0.0f ? static_cast<uint32_t>(std::max(p.top_k, 0)) : 0u});
  if (need > kMaxTopCandidates || !sampler_.samples_from_best(need)) return 0;
  return need;
}

SampledChoice RequestSampler::sample_candidates(std::span<const int32_t> ids,
                                                std::span<const float> logits,
                                                double log_normalizer) {
  // Only orderable tokens are candidates; a row with none (all NaN) takes token 0, as argmax
  // over such a row does.
  size_t valid = 0;
  while (valid < ids.size() && ids[valid] >= 0) ++valid;
  SampledChoice c;
  if (valid == 0) {
    sampler_.seek(sampler_.token_index() + 1);
  } else {
    c.token = sampler_.sample_ranked(ids.first(valid), logits.first(valid));
  }
  if (wants_logprobs()) {
    // As score_token computes them from the row: own logit minus the log-normalizer.
    for (size_t i = 0; i < valid; ++i) {
      if (ids[i] == c.token) c.logprob = static_cast<float>(logits[i] - log_normalizer);
    }
    add_top_logprobs(ids, logits, log_normalizer, c);
  }
  record(c.token);
  return c;
}

void RequestSampler::add_top_logprobs(std::span<const int32_t> ids, std::span<const float> logits,
                                      double log_normalizer, SampledChoice& c) const {
  for (size_t i = 0; i < std::min<size_t>(params_.top_logprobs, ids.size()) && ids[i] >= 0; ++i) {
    c.top_logprobs.push_back({ids[i], static_cast<float>(logits[i] - log_normalizer)});
  }
}

std::optional<kernels::RowDrawParams> RequestSampler::row_draw() const {
  if (!row_untouched() || params_.top_logprobs > kMaxTopCandidates) return std::nullopt;
  return sampler_.whole_row_draw();
}

uint32_t RequestSampler::logprob_candidates() const {
  return wants_logprobs() ? std::max<uint32_t>(1, params_.top_logprobs) : 0;
}

SampledChoice RequestSampler::sample_drawn(int32_t token, float token_logit,
                                           std::span<const int32_t> ids,
                                           std::span<const float> logits, double log_normalizer) {
  // The draw used this token index's bits (row_draw); the sampler moves past it.
  sampler_.seek(sampler_.token_index() + 1);
  SampledChoice c;
  c.token = token;
  if (wants_logprobs()) {
    c.logprob = static_cast<float>(token_logit - log_normalizer);
    add_top_logprobs(ids, logits, log_normalizer, c);
  }
  record(c.token);
  return c;
}

}  // namespace v4
