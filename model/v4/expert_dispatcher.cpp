#include "model/v4/expert_dispatcher.h"

#include <algorithm>

namespace v4 {

void LocalExpertDispatcher::dispatch_combine(uint32_t layer, const ExpertFfnWeights& experts,
                                             const RoutedTokens& in, float* out) {
  const int64_t pairs = in.n_tokens * in.k, d = in.n_embd;
  if (pairs == 0) return;
  // Counting sort of the (token, slot) pairs by expert id: each expert's rows are contiguous, in
  // token then slot order, so one weight block serves all of them.
  int32_t n_expert = 0;
  for (int64_t i = 0; i < pairs; ++i) n_expert = std::max(n_expert, in.experts[i] + 1);
  count_.assign(static_cast<size_t>(n_expert) + 1, 0);
  for (int64_t i = 0; i < pairs; ++i) ++count_[static_cast<size_t>(in.experts[i]) + 1];
  groups_.clear();
  for (int32_t e = 0; e < n_expert; ++e) {
    const int64_t first = count_[static_cast<size_t>(e)], rows = count_[static_cast<size_t>(e) + 1];
    if (rows > 0) groups_.push_back({e, first, rows});
    count_[static_cast<size_t>(e) + 1] += first;
  }
  source_token_.resize(static_cast<size_t>(pairs));
  slot_row_.resize(static_cast<size_t>(pairs));
  row_scale_.resize(static_cast<size_t>(pairs));
  for (int64_t i = 0; i < pairs; ++i) {
    const int64_t row = count_[static_cast<size_t>(in.experts[i])]++;
    source_token_[static_cast<size_t>(row)] = i / in.k;
    slot_row_[static_cast<size_t>(i)] = row;
    row_scale_[static_cast<size_t>(row)] = in.weights[i];
  }
  const size_t values = static_cast<size_t>(pairs * d);
  if (gathered_.size() < values) {
    gathered_.resize(values);
    expert_out_.resize(values);
  }
  backend_.gather_rows(in.x, d, source_token_.data(), pairs, gathered_.data());
  backend_.grouped_expert_ffn(experts, groups_, gathered_.data(), row_scale_.data(),
                              expert_out_.data());
  backend_.sum_slots(expert_out_.data(), slot_row_.data(), in.n_tokens, in.k, d, out);
}

}  // namespace v4
