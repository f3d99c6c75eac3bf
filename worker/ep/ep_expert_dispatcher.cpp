#include "worker/ep/ep_expert_dispatcher.h"

#include <algorithm>
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

// Bytes of an all-to-all's segments (this rank's own is always empty).
uint64_t total(const std::vector<int64_t>& bytes) {
  uint64_t sum = 0;
  for (int64_t b : bytes) sum += static_cast<uint64_t>(b);
  return sum;
}

template <class T>
T* fit(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace

EpExpertDispatcher::EpExpertDispatcher(Backend& backend, ExpertComm& comm, uint32_t n_expert,
                                       bool overlap)
    : EpExpertDispatcher(backend, comm, ExpertPlacement(n_expert, comm.size()), overlap) {}

EpExpertDispatcher::EpExpertDispatcher(Backend& backend, ExpertComm& comm,
                                       ExpertPlacement placement, bool overlap)
    : backend_(backend),
      comm_(comm),
      placement_(std::move(placement)),
      local_(backend),
      exchanges_(overlap && comm.size() > 1) {}  // one rank: nothing travels to overlap

Status EpExpertDispatcher::take_error() {
  Status s = error_;
  error_ = Status::ok();
  return s;
}

void EpExpertDispatcher::dispatch_combine(uint32_t layer, const ExpertFfnWeights& experts,
                                          const RoutedTokens& in, float* out,
                                          FunctionRef<void()> meanwhile) {
  // After a failure the group is broken: skip the collectives (peers time out too) and let the
  // forward report the first error.
  if (!error_) {
    meanwhile();
    return;
  }
  error_ = exchange(layer, experts, in, meanwhile);
  if (!error_) return;
  const auto start = Clock::now();
  if (in.n_tokens > 0) {
    backend_.sum_slots(returned_.data(), slot_row_.data(), in.n_tokens, in.k, in.n_embd, out);
  }
  traffic_.combine_seconds += seconds_since(start);
  ++traffic_.exchanges;
}

void EpExpertDispatcher::pack(uint32_t layer, const RoutedTokens& in) {
  const int ranks = comm_.size(), me = comm_.rank();
  const int64_t pairs = in.n_tokens * in.k, d = in.n_embd, width = d + kRowExtra;
  // Pairs per owning rank.
  counts_.assign(static_cast<size_t>(ranks) + 1, 0);
  for (int64_t i = 0; i < pairs; ++i)
    ++counts_[static_cast<size_t>(placement_.owner(layer, in.experts[i], me))];
  // The last entry carries the layer, so ranks that fell out of step notice.
  counts_[static_cast<size_t>(ranks)] = layer;
  // Send order: the peers' rows by rank (the segments of the all-to-all). Results come back in
  // the same order, so a pair's send position is also its result row; this rank's own pairs,
  // which never leave it, take the result rows after them.
  std::vector<int64_t>& start = send_order_;
  start.assign(static_cast<size_t>(ranks), 0);
  int64_t at = 0;
  for (int r = 0; r < ranks; ++r) {
    if (r == me) continue;
    start[static_cast<size_t>(r)] = at;
    at += counts_[static_cast<size_t>(r)];
  }
  own_begin_ = at;
  start[static_cast<size_t>(me)] = at;
  const int64_t own = counts_[static_cast<size_t>(me)];
  slot_row_.resize(static_cast<size_t>(pairs));
  float* send = fit(send_, static_cast<size_t>(own_begin_ * width));
  float* own_x = fit(own_x_, static_cast<size_t>(own * d));
  int32_t* own_ids = fit(own_experts_, static_cast<size_t>(own));
  float* own_weights = fit(own_weights_, static_cast<size_t>(own));
  for (int64_t i = 0; i < pairs; ++i) {
    const int owner = placement_.owner(layer, in.experts[i], me);
    const int64_t pos = start[static_cast<size_t>(owner)]++;
    slot_row_[static_cast<size_t>(i)] = pos;
    const float* x = in.x + (i / in.k) * d;
    if (owner == me) {
      const int64_t j = pos - own_begin_;
      std::memcpy(own_x + j * d, x, static_cast<size_t>(d) * sizeof(float));
      own_ids[j] = in.experts[i];
      own_weights[j] = in.weights[i];
      continue;
    }
    float* row = send + pos * width;
    std::memcpy(row, x, static_cast<size_t>(d) * sizeof(float));
    std::memcpy(row + d, &in.experts[i], sizeof(int32_t));
    row[d + 1] = in.weights[i];
  }
}

Status EpExpertDispatcher::send_rows(uint32_t layer, int64_t width) {
  const int ranks = comm_.size(), me = comm_.rank();
  // Who sends how many rows to whom.
  const int64_t n = ranks + 1;
  fit(all_counts_, static_cast<size_t>(n * ranks));
  if (Status s = comm_.all_gather(counts_.data(), n, all_counts_.data()); !s) return s;
  from_.assign(static_cast<size_t>(ranks), 0);
  send_bytes_.assign(static_cast<size_t>(ranks), 0);
  recv_bytes_.assign(static_cast<size_t>(ranks), 0);
  received_ = 0;
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
    if (r == me) continue;  // this rank's own rows never leave send_
    from_[static_cast<size_t>(r)] = from_r;
    recv_bytes_[static_cast<size_t>(r)] = from_r * width * static_cast<int64_t>(sizeof(float));
    send_bytes_[static_cast<size_t>(r)] =
        counts_[static_cast<size_t>(r)] * width * static_cast<int64_t>(sizeof(float));
    received_ += from_r;
  }
  float* recv = fit(recv_, static_cast<size_t>(received_ * width));
  return comm_.all_to_all(send_.data(), send_bytes_, recv, recv_bytes_);
}

Status EpExpertDispatcher::unpack(uint32_t layer, const float* rows, int64_t count, int64_t d,
                                  float* x, int32_t* ids, float* weights) const {
  const int me = comm_.rank();
  for (int64_t j = 0; j < count; ++j) {
    const float* row = rows + j * (d + kRowExtra);
    std::memcpy(x + j * d, row, static_cast<size_t>(d) * sizeof(float));
    std::memcpy(&ids[j], row + d, sizeof(int32_t));
    weights[j] = row[d + 1];
    if (!placement_.holds(me, layer, ids[j])) {
      return Status::error("expert parallelism: rank " + std::to_string(me) +
                           " got a row for expert " + std::to_string(ids[j]) +
                           ", which it does not own");
    }
  }
  return Status::ok();
}

// The hidden exchange time of the job just waited for, and the part that was not hidden.
void EpExpertDispatcher::account(double exposed, double& phase_seconds) {
  phase_seconds += exposed;
  traffic_.overlapped_seconds += std::max(0.0, exchanges_.last_job_seconds() - exposed);
}

Status EpExpertDispatcher::exchange(uint32_t layer, const ExpertFfnWeights& experts,
                                    const RoutedTokens& in, FunctionRef<void()> meanwhile) {
  auto clock = Clock::now();
  const int me = comm_.rank();
  const int64_t pairs = in.n_tokens * in.k, d = in.n_embd, width = d + kRowExtra;
  pack(layer, in);
  const int64_t own = counts_[static_cast<size_t>(me)], from_peers = own_begin_;
  // (1) Rows to the ranks owning their experts, while the shared expert runs here.
  traffic_.dispatch_seconds += seconds_since(clock);  // the exchange itself: account() below
  // The jobs live until their wait() below: the exchange thread holds only references to them.
  const auto send = [this, layer, width] { return send_rows(layer, width); };
  exchanges_.start(send);
  meanwhile();
  double exposed = 0;
  Status s = exchanges_.wait(&exposed);
  account(exposed, traffic_.dispatch_seconds);
  if (!s) return s;
  traffic_.dispatch_bytes += total(send_bytes_);
  rows_sent_ += static_cast<uint64_t>(from_peers);
  clock = Clock::now();
  // The peers' rows, unpacked for the experts (this rank's own are in own_* already).
  float* x = fit(recv_x_, static_cast<size_t>(received_ * d));
  int32_t* ids = fit(recv_experts_, static_cast<size_t>(received_));
  float* weights = fit(recv_weights_, static_cast<size_t>(received_));
  if (s = unpack(layer, recv_.data(), received_, d, x, ids, weights); !s) return s;
  traffic_.dispatch_seconds += seconds_since(clock);
  // (2) The peers' rows through this rank's experts (one slot per row: each comes back
  // weighted, unsummed).
  clock = Clock::now();
  float* served = fit(served_, static_cast<size_t>(received_ * d));
  if (received_ > 0) {
    local_.dispatch_combine(layer, experts, {x, ids, weights, received_, 1, d, in.n_expert}, served,
                            [] {});
  }
  rows_served_ += static_cast<uint64_t>(received_);
  traffic_.expert_seconds += seconds_since(clock);
  // (3) Their results back, arriving in this rank's send order without its own rows, while this
  // rank's own rows run through its experts into the place after them.
  clock = Clock::now();
  const int ranks = comm_.size();
  for (int r = 0; r < ranks; ++r) {
    send_bytes_[static_cast<size_t>(r)] =
        from_[static_cast<size_t>(r)] * d * static_cast<int64_t>(sizeof(float));
    recv_bytes_[static_cast<size_t>(r)] =
        r == me ? 0 : counts_[static_cast<size_t>(r)] * d * static_cast<int64_t>(sizeof(float));
  }
  float* returned = fit(returned_, static_cast<size_t>(pairs * d));
  traffic_.combine_seconds += seconds_since(clock);
  const auto send_back = [this, served, returned] {
    return comm_.all_to_all(served, send_bytes_, returned, recv_bytes_);
  };
  exchanges_.start(send_back);
  clock = Clock::now();
  if (own > 0) {
    local_.dispatch_combine(
        layer, experts,
        {own_x_.data(), own_experts_.data(), own_weights_.data(), own, 1, d, in.n_expert},
        returned + from_peers * d, [] {});
  }
  traffic_.expert_seconds += seconds_since(clock);
  s = exchanges_.wait(&exposed);
  account(exposed, traffic_.combine_seconds);
  traffic_.combine_bytes += total(send_bytes_);
  return s;
}

}  // namespace v4
