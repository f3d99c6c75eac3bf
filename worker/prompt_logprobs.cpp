#include "worker/prompt_logprobs.h"

#include <algorithm>
#include <numeric>

#include "kernels/cpu/token_candidates.h"

namespace v4 {

PromptTokenLogprobs score_token(std::span<const float> logits, int32_t token, size_t top) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  // The one definition a backend's top_logits uses too, so logprobs agree on either path.
  const double log_z =
      kernels::log_normalizer(logits.data(), static_cast<int64_t>(logits.size()), mx);
  PromptTokenLogprobs out;
  out.token = token;
  const float own = logits[static_cast<size_t>(token)];
  out.logprob = static_cast<float>(own - log_z);
  out.rank = 1 + static_cast<uint32_t>(
                     std::count_if(logits.begin(), logits.end(), [&](float l) { return l > own; }));
  const size_t k = std::min(top, logits.size());
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(
      ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
      [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; });
  for (size_t i = 0; i < k; ++i)
    out.top.push_back({ids[i], static_cast<float>(logits[ids[i]] - log_z)});
  return out;
}

PromptLogprobsCollector::PromptLogprobsCollector(std::vector<int32_t> prompt, uint32_t top)
    : prompt_(std::move(prompt)), top_(top), entries_(prompt_.empty() ? 0 : prompt_.size() - 1) {}

void PromptLogprobsCollector::add_rows(uint64_t first_position, std::span<const float> logits,
                                       size_t n_vocab) {
  const size_t rows = logits.size() / n_vocab;
  for (size_t j = 0; j < rows; ++j) {
    const uint64_t scored = first_position + j + 1;  // the prompt position row j predicts
    if (scored >= prompt_.size()) break;
    entries_[scored - 1] = score_token(logits.subspan(j * n_vocab, n_vocab), prompt_[scored], top_);
    scored_ = std::max<size_t>(scored_, scored);
  }
}

}  // namespace v4
