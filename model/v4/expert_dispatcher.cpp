#include "model/v4/expert_dispatcher.h"

#include <algorithm>

namespace v4 {

void LocalExpertDispatcher::ensure(int64_t pairs, int64_t width, uint32_t n_expert) {
  if (pairs <= pairs_ && width <= width_ && n_expert <= n_expert_) return;
  pairs_ = std::max(pairs, pairs_);
  width_ = std::max(width, width_);
  n_expert_ = std::max(n_expert, n_expert_);
  const size_t p = static_cast<size_t>(pairs_), rows = p * static_cast<size_t>(width_);
  // int64 arrays first, then floats: every piece stays 8-byte aligned.
  const size_t ints = (n_expert_ + 1) + 2 * p, floats = p + 2 * rows;
  arena_ = backend_.allocate(ints * sizeof(int64_t) + floats * sizeof(float));
  int64_t* i = static_cast<int64_t*>(arena_->data());
  offsets_ = i;
  source_token_ = offsets_ + n_expert_ + 1;
  slot_row_ = source_token_ + p;
  float* f = reinterpret_cast<float*>(slot_row_ + p);
  row_scale_ = f;
  gathered_ = row_scale_ + p;
  expert_out_ = gathered_ + rows;
}

void LocalExpertDispatcher::dispatch_combine([[maybe_unused]] uint32_t layer,
                                             const ExpertFfnWeights& experts,
                                             const RoutedTokens& in, float* out,
                                             FunctionRef<void()> meanwhile) {
  meanwhile();
  const int64_t pairs = in.n_tokens * in.k, d = in.n_embd;
  if (pairs == 0) return;
  ensure(pairs, d, in.n_expert);
  // Each expert's rows contiguous, in token then slot order, so one weight block serves all.
  backend_.group_by_expert(in.experts, in.weights, in.n_tokens, in.k, in.n_expert, offsets_,
                           source_token_, row_scale_, slot_row_);
  backend_.gather_rows(in.x, d, source_token_, pairs, gathered_);
  backend_.grouped_expert_ffn(experts, offsets_, in.n_expert, pairs, gathered_, row_scale_,
                              expert_out_);
  backend_.sum_slots(expert_out_, slot_row_, in.n_tokens, in.k, d, out);
}

}  // namespace v4
