#include "worker/ep/ep_expert_dispatcher.h"

#include <chrono>
#include <cstring>
#include <string>

namespace v4 {
namespace {

// A row on the wire: n_embd activations, then the expert id (its bits) and the routing weight.
constexpr int64_t kRowExtra = 2;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Bytes of `bytes` that leave this rank.
uint64_t to_peers(const std::vector<int64_t>& bytes, int me) {
  uint64_t sum = 0;
  for (size_t r = 0; r < bytes.size(); ++r)
    if (static_cast<int>(r) != me) sum += static_cast<uint64_t>(bytes[r]);
  return sum;
}

template <class T>
T* fit(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace

EpExpertDispatcher::EpExpertDispatcher(Backend& backend, ExpertComm& comm, uint32_t n_expert)
    : EpExpertDispatcher(backend, comm, ExpertPlacement(n_expert, comm.size())) {}

EpExpertDispatcher::EpExpertDispatcher(Backend& backend, ExpertComm& comm,
                                       ExpertPlacement placement)
    : backend_(backend), comm_(comm), placement_(std::move(placement)), local_(backend) {}

Status EpExpertDispatcher::take_error() {
  Status s = error_;
  error_ = Status::ok();
  return s;
}

void EpExpertDispatcher::dispatch_combine(uint32_t layer, const ExpertFfnWeights& experts,
                                          const RoutedTokens& in, float* out) {
  // After a failure the group is broken: skip the collectives (peers time out too) and let the
  // forward report the first error.
  if (!error_) return;
  error_ = exchange(layer, experts, in);
  if (!error_) return;
  const auto start = Clock::now();
  if (in.n_tokens > 0) {
    backend_.sum_slots(returned_.data(), slot_row_.data(), in.n_tokens, in.k, in.n_embd, out);
  }
  traffic_.combine_seconds += seconds_since(start);
  ++traffic_.exchanges;
}

Status EpExpertDispatcher::exchange(uint32_t layer, const ExpertFfnWeights& experts,
                                    const RoutedTokens& in) {
  const auto dispatch_start = Clock::now();
  const int ranks = comm_.size(), me = comm_.rank();
  const int64_t pairs = in.n_tokens * in.k, d = in.n_embd, width = d + kRowExtra;
  // (1) Pairs in send order: by owning rank, then pair order.
  counts_.assign(static_cast<size_t>(ranks) + 1, 0);
  for (int64_t i = 0; i < pairs; ++i)
    ++counts_[static_cast<size_t>(placement_.owner(layer, in.experts[i], me))];
  // The last entry carries the layer, so ranks that fell out of step notice.
  counts_[static_cast<size_t>(ranks)] = layer;
  std::vector<int64_t>& start = send_order_;
  start.assign(static_cast<size_t>(ranks), 0);
  for (int r = 1; r < ranks; ++r) start[r] = start[r - 1] + counts_[static_cast<size_t>(r - 1)];
  slot_row_.resize(static_cast<size_t>(pairs));
  float* send = fit(send_, static_cast<size_t>(pairs * width));
  for (int64_t i = 0; i < pairs; ++i) {
    const int64_t pos = start[static_cast<size_t>(placement_.owner(layer, in.experts[i], me))]++;
    slot_row_[static_cast<size_t>(i)] = pos;
    float* row = send + pos * width;
    std::memcpy(row, in.x + (i / in.k) * d, static_cast<size_t>(d) * sizeof(float));
    std::memcpy(row + d, &in.experts[i], sizeof(int32_t));
    row[d + 1] = in.weights[i];
  }
  // (2) Who sends how many rows to whom.
  const int64_t n = ranks + 1;
  fit(all_counts_, static_cast<size_t>(n * ranks));
  if (Status s = comm_.all_gather(counts_.data(), n, all_counts_.data()); !s) return s;
  int64_t received = 0;
  send_bytes_.assign(static_cast<size_t>(ranks), 0);
  recv_bytes_.assign(static_cast<size_t>(ranks), 0);
  for (int r = 0; r < ranks; ++r) {
    const int64_t peer_layer = all_counts_[static_cast<size_t>(r * n + ranks)];
    if (peer_layer != layer) {
      return Status::error("expert parallelism: rank " + std::to_string(r) + " is at MoE layer " +
                           std::to_string(peer_layer) + ", rank " + std::to_string(me) +
                           " at layer " + std::to_string(layer));
    }
    const int64_t from_r = all_counts_[static_cast<size_t>(r * n + me)];
    if (from_r < 0 || from_r > int64_t{1} << 32) {
      return Status::error("expert parallelism: rank " + std::to_string(r) + " announced " +
                           std::to_string(from_r) + " rows");
    }
    recv_bytes_[static_cast<size_t>(r)] = from_r * width * static_cast<int64_t>(sizeof(float));
    send_bytes_[static_cast<size_t>(r)] =
        counts_[static_cast<size_t>(r)] * width * static_cast<int64_t>(sizeof(float));
    received += from_r;
  }
  // (3) Rows to the ranks owning their experts.
  float* recv = fit(recv_, static_cast<size_t>(received * width));
  if (Status s = comm_.all_to_all(send, send_bytes_, recv, recv_bytes_); !s) return s;
  traffic_.dispatch_bytes += to_peers(send_bytes_, me);
  rows_sent_ += static_cast<uint64_t>(pairs - counts_[static_cast<size_t>(me)]);
  float* x = fit(recv_x_, static_cast<size_t>(received * d));
  int32_t* ids = fit(recv_experts_, static_cast<size_t>(received));
  float* weights = fit(recv_weights_, static_cast<size_t>(received));
  for (int64_t j = 0; j < received; ++j) {
    const float* row = recv + j * width;
    std::memcpy(x + j * d, row, static_cast<size_t>(d) * sizeof(float));
    std::memcpy(&ids[j], row + d, sizeof(int32_t));
    weights[j] = row[d + 1];
    if (!placement_.holds(me, layer, ids[j])) {
      return Status::error("expert parallelism: rank " + std::to_string(me) +
                           " got a row for expert " + std::to_string(ids[j]) +
                           ", which it does not own");
    }
  }
  const auto experts_start = Clock::now();
  traffic_.dispatch_seconds +=
      std::chrono::duration<double>(experts_start - dispatch_start).count();
  float* served = fit(served_, static_cast<size_t>(received * d));
  if (received > 0) {
    local_.dispatch_combine(layer, experts, {x, ids, weights, received, 1, d, in.n_expert}, served);
  }
  rows_served_ += static_cast<uint64_t>(received - counts_[static_cast<size_t>(me)]);
  // (4) Results back, arriving in this rank's send order.
  for (int r = 0; r < ranks; ++r) {
    send_bytes_[static_cast<size_t>(r)] = recv_bytes_[static_cast<size_t>(r)] / width * d;
    recv_bytes_[static_cast<size_t>(r)] =
        counts_[static_cast<size_t>(r)] * d * static_cast<int64_t>(sizeof(float));
  }
  const auto combine_start = Clock::now();
  traffic_.expert_seconds += std::chrono::duration<double>(combine_start - experts_start).count();
  float* returned = fit(returned_, static_cast<size_t>(pairs * d));
  Status s = comm_.all_to_all(served, send_bytes_, returned, recv_bytes_);
  traffic_.combine_bytes += to_peers(send_bytes_, me);
  traffic_.combine_seconds += seconds_since(combine_start);
  return s;
}

}  // namespace v4
