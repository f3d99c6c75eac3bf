#include "model/v4/expert_dispatcher.h"

#include <algorithm>
#include <string>

namespace v4 {

Status read_back_routing(Backend& backend, const RoutedTokens& in, uint32_t n_expert,
                         std::vector<int32_t>& ids, std::vector<float>& weights) {
  const auto pairs = static_cast<size_t>(in.n_tokens * in.k);
  ids.resize(pairs);
  weights.resize(pairs);
  if (pairs == 0) return Status::ok();
  Status s = backend.read_back(in.experts, ids.data(), pairs * sizeof(int32_t));
  if (s) s = backend.read_back(in.weights, weights.data(), pairs * sizeof(float));
  if (!s) return s;
  for (int32_t e : ids) {
    if (e < 0 || static_cast<uint32_t>(e) >= n_expert)
      return Status::error("expert id " + std::to_string(e) + " out of range (the model has " +
                           std::to_string(n_expert) + " routed experts)");
  }
  return Status::ok();
}

uint64_t ExpertDispatchBuffers::bytes_for(int64_t pairs, int64_t width, uint32_t buckets) {
  const auto p = static_cast<uint64_t>(pairs), rows = p * static_cast<uint64_t>(width);
  // int64 arrays first (offsets, source tokens, slot rows), then floats (row scales, expert
  // outputs): every piece stays 8-byte aligned.
  const uint64_t ints = (uint64_t{buckets} + 1) + 2 * p, floats = p + rows;
  return ints * sizeof(int64_t) + floats * sizeof(float);
}

void ExpertDispatchBuffers::ensure(int64_t pairs, int64_t width, uint32_t buckets) {
  if (pairs <= pairs_ && width <= width_ && buckets <= buckets_) return;
  pairs_ = std::max(pairs, pairs_);
  width_ = std::max(width, width_);
  buckets_ = std::max(buckets, buckets_);
  const size_t p = static_cast<size_t>(pairs_);
  ++generation_;
  arena_ = backend_.allocate(bytes_for(pairs_, width_, buckets_));
  int64_t* i = static_cast<int64_t*>(arena_->data());
  offsets = i;
  source_token = offsets + buckets_ + 1;
  slot_row = source_token + p;
  float* f = reinterpret_cast<float*>(slot_row + p);
  row_scale = f;
  expert_out = row_scale + p;
}

void LocalExpertDispatcher::dispatch_combine([[maybe_unused]] uint32_t layer,
                                             const ExpertFfnWeights& experts,
                                             const RoutedTokens& in, float* out,
                                             FunctionRef<void()> meanwhile) {
  meanwhile();
  const int64_t pairs = in.n_tokens * in.k, d = in.n_embd;
  if (pairs == 0) return;
  ExpertDispatchBuffers& b = buffers_;
  b.ensure(pairs, d, in.n_expert);
  // Each expert's rows contiguous, in token then slot order, so one weight block serves all;
  // the FFN gathers each row's token as it quantizes it.
  backend_.group_by_expert(in.experts, in.weights, in.n_tokens, in.k, in.n_expert, b.offsets,
                           b.source_token, b.row_scale, b.slot_row);
  backend_.grouped_expert_ffn(experts, b.offsets, in.n_expert, pairs, in.x, b.source_token,
                              b.row_scale, b.expert_out);
  backend_.sum_slots(b.expert_out, b.slot_row, in.n_tokens, in.k, d, out);
}

}  // namespace v4
