#include "model/v4/tiered_expert_dispatcher.h"

#include <algorithm>
#include <cstring>

#include "model/v4/moe.h"

namespace v4 {

Result<std::unique_ptr<TieredExpertDispatcher>> TieredExpertDispatcher::create(
    Backend& device, Backend& host, const V4Weights& host_weights, ExpertTiers tiers) {
  const V4Config& c = host_weights.config;
  if (Status s = tiers.validate(c.n_layer, c.n_expert); !s) return s;
  return std::unique_ptr<TieredExpertDispatcher>(
      new TieredExpertDispatcher(device, host, host_weights, std::move(tiers)));
}

Result<std::unique_ptr<TieredExpertDispatcher>> TieredExpertDispatcher::create(
    Backend& device, std::unique_ptr<Backend> host, const V4Weights& host_weights,
    ExpertTiers tiers) {
  Result<std::unique_ptr<TieredExpertDispatcher>> d =
      create(device, *host, host_weights, std::move(tiers));
  if (d) (*d)->owned_host_ = std::move(host);
  return d;
}

TieredExpertDispatcher::TieredExpertDispatcher(Backend& device, Backend& host,
                                               const V4Weights& host_weights, ExpertTiers tiers)
    : device_(device),
      host_(host),
      host_weights_(host_weights),
      tiers_(std::move(tiers)),
      whole_(device),
      device_buffers_(device) {
  for (uint32_t l = 0; l < tiers_.hot.size(); ++l)
    slots_.push_back(tiers_.slots(l, host_weights.config.n_expert));
}

void TieredExpertDispatcher::plan(uint32_t layer, const RoutedTokens& in) {
  const int64_t pairs = in.n_tokens * in.k;
  const std::vector<int32_t>& slot = slots_[layer];
  const int32_t cold_bucket = static_cast<int32_t>(tiers_.hot[layer].size());
  bucket_of_.resize(static_cast<size_t>(pairs));
  for (int64_t i = 0; i < pairs; ++i) {
    const int32_t e = ids_[static_cast<size_t>(i)];
    bucket_of_[static_cast<size_t>(i)] =
        slot[static_cast<size_t>(e)] >= 0 ? slot[static_cast<size_t>(e)] : cold_bucket;
  }
  const auto buckets = static_cast<uint32_t>(cold_bucket + 1);
  plan_ints_.resize((buckets + 1) + 2 * static_cast<size_t>(pairs));
  row_scale_.resize(static_cast<size_t>(pairs));
  int64_t* offsets = plan_ints_.data();
  int64_t* source = offsets + buckets + 1;
  int64_t* slot_row = source + pairs;
  host_.group_by_expert(bucket_of_.data(), weights_.data(), in.n_tokens, in.k, buckets, offsets,
                        source, row_scale_.data(), slot_row);
  hot_rows_ = offsets[cold_bucket];
}

void TieredExpertDispatcher::run_cold(uint32_t layer, const RoutedTokens& in) {
  const int64_t pairs = in.n_tokens * in.k, d = in.n_embd;
  const int32_t cold_bucket = static_cast<int32_t>(tiers_.hot[layer].size());
  // The cold pairs in token-then-slot order: the order of their rows in the plan.
  cold_ids_.clear();
  cold_weights_.clear();
  cold_token_.clear();
  for (int64_t i = 0; i < pairs; ++i) {
    const auto pair = static_cast<size_t>(i);
    if (bucket_of_[pair] != cold_bucket) continue;
    cold_ids_.push_back(ids_[pair]);
    cold_weights_.push_back(weights_[pair]);
    cold_token_.push_back(i / in.k);
  }
  // Grouped by expert on the host (one pass over each cold expert's weights): row r holds cold
  // pair cold_pair_of_row_[r]; pair j's result is row cold_row_of_pair_[j].
  const auto cold = static_cast<int64_t>(cold_ids_.size());
  const auto n = static_cast<size_t>(cold);
  staging_.clear();
  if (cold == 0) return;  // every pair of the step chose a hot expert
  cold_offsets_.resize(in.n_expert + 1);
  cold_pair_of_row_.resize(n);
  cold_row_of_pair_.resize(n);
  cold_row_scale_.resize(n);
  cold_row_token_.resize(n);
  host_.group_by_expert(cold_ids_.data(), cold_weights_.data(), cold, 1, in.n_expert,
                        cold_offsets_.data(), cold_pair_of_row_.data(), cold_row_scale_.data(),
                        cold_row_of_pair_.data());
  for (size_t r = 0; r < n; ++r)
    cold_row_token_[r] = cold_token_[static_cast<size_t>(cold_pair_of_row_[r])];
  cold_in_.resize(n * static_cast<size_t>(d));
  cold_out_.resize(n * static_cast<size_t>(d));
  host_.gather_rows(x_.data(), d, cold_row_token_.data(), cold, cold_in_.data());
  host_.grouped_expert_ffn(routed_experts(host_weights_.config, host_weights_.layers[layer]),
                           cold_offsets_.data(), in.n_expert, cold, cold_in_.data(), nullptr,
                           cold_row_scale_.data(), cold_out_.data());
  staging_.resize(n * static_cast<size_t>(d));
  for (size_t j = 0; j < n; ++j)
    std::memcpy(&staging_[j * static_cast<size_t>(d)],
                &cold_out_[static_cast<size_t>(cold_row_of_pair_[j] * d)],
                static_cast<size_t>(d) * sizeof(float));
}

void TieredExpertDispatcher::dispatch_combine(uint32_t layer, const ExpertFfnWeights& experts,
                                              const RoutedTokens& in, float* out,
                                              FunctionRef<void()> meanwhile) {
  if (layer >= slots_.size() || tiers_.all_hot(layer, in.n_expert)) {
    whole_.dispatch_combine(layer, experts, in, out, meanwhile);
    return;
  }
  const int64_t pairs = in.n_tokens * in.k, d = in.n_embd;
  if (pairs == 0) {
    meanwhile();
    return;
  }
  // The routing and the rows come to the host; the plan goes back.
  x_.resize(static_cast<size_t>(in.n_tokens * d));
  Status s = read_back_routing(device_, in, in.n_expert, ids_, weights_);
  if (s) s = device_.read_back(in.x, x_.data(), x_.size() * sizeof(float));
  if (!s) {
    error_ = Status::error("tiered experts: " + s.message());
    meanwhile();
    return;
  }
  plan(layer, in);
  const auto hot_buckets = static_cast<uint32_t>(tiers_.hot[layer].size());
  ExpertDispatchBuffers& b = device_buffers_;
  b.ensure(pairs, d, hot_buckets + 1);
  const Tensor arena = Tensor::whole(b.buffer());
  const auto byte_offset = [&](const void* p) {
    return static_cast<size_t>(static_cast<const uint8_t*>(p) -
                               static_cast<const uint8_t*>(b.buffer()->data()));
  };
  const int64_t* host_offsets = plan_ints_.data();
  const int64_t* host_source = host_offsets + hot_buckets + 2;
  const struct {
    const void* host;
    const void* device;
    size_t bytes;
  } copies[] = {
      {host_offsets, b.offsets, (hot_buckets + 2) * sizeof(int64_t)},
      {host_source, b.source_token, pairs * sizeof(int64_t)},
      {host_source + pairs, b.slot_row, pairs * sizeof(int64_t)},
      {row_scale_.data(), b.row_scale, pairs * sizeof(float)},
  };
  for (const auto& c : copies)
    if (s) s = device_.copy_to_device(c.host, arena, byte_offset(c.device), c.bytes);
  if (!s) {
    error_ = Status::error("tiered experts: " + s.message());
    meanwhile();
    return;
  }
  // The device's share is queued before the CPU takes its own.
  meanwhile();
  if (hot_rows_ > 0) {
    device_.grouped_expert_ffn(experts, b.offsets, hot_buckets, hot_rows_, in.x, b.source_token,
                               b.row_scale, b.expert_out);
  }
  run_cold(layer, in);
  if (!staging_.empty()) {
    s = device_.copy_to_device(staging_.data(), arena, byte_offset(b.expert_out + hot_rows_ * d),
                               staging_.size() * sizeof(float));
  }
  if (!s) {
    error_ = Status::error("tiered experts: " + s.message());
    return;
  }
  device_.sum_slots(b.expert_out, b.slot_row, in.n_tokens, in.k, d, out);
  hot_pairs_ += static_cast<uint64_t>(hot_rows_);
  cold_pairs_ += static_cast<uint64_t>(pairs - hot_rows_);
}

}  // namespace v4
