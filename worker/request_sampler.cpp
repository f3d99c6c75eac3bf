#include "worker/request_sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

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

}  // namespace

RequestSampler::RequestSampler(const SamplingParams& params)
    : params_(params), sampler_(sampler_options(params)) {}

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

SampledChoice RequestSampler::sample(std::span<const float> raw) {
  std::vector<float> logits(raw.begin(), raw.end());
  process(logits);
  SampledChoice c;
  c.token = sampler_.sample(logits);
  if (params_.logprobs || params_.top_logprobs > 0) {
    const float mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0.0;
    for (float l : logits) sum += std::exp(static_cast<double>(l) - mx);
    const double log_z = mx + std::log(sum);
    c.logprob = static_cast<float>(logits[static_cast<size_t>(c.token)] - log_z);
    const size_t k = std::min<size_t>(params_.top_logprobs, logits.size());
    std::vector<int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                      [&](int32_t a, int32_t b) {
                        return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
                      });
    for (size_t i = 0; i < k; ++i)
      c.top_logprobs.push_back({ids[i], static_cast<float>(logits[ids[i]] - log_z)});
  }
  ++output_counts_[c.token];
  if (params_.repetition_penalty != 1.0f) seen_.insert(c.token);
  ++generated_;
  return c;
}

}  // namespace v4
