#include "worker/request_sampler.h"

#include <algorithm>

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

RequestSampler::RequestSampler(const SamplingParams& params)
    : params_(params),
      sampler_(sampler_options(params)),
      guided_(params.allowed_outputs, end_token(params)) {}

bool RequestSampler::guided_complete() const {
  return guided_.active() && params_.stop_token_ids.empty() && guided_.complete();
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
  ++output_counts_[c.token];
  if (params_.repetition_penalty != 1.0f) seen_.insert(c.token);
  if (guided_.active()) guided_.advance(c.token);
  ++generated_;
  return c;
}

}  // namespace v4
