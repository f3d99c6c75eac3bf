#include "worker/ep/ep_expert_dispatcher.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

namespace v4 {
namespace {

// A row on the wire: n_embd activations, then the expert id (a float: ids are far below 2^24,
// exact) and the routing weight.
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

// A region's smallest allocation (EpExpertDispatcher::fit).
constexpr uint64_t kMinRegionBytes = 256;

// The most each region holds for steps of up to `tokens` tokens on every rank: this rank's
// p = tokens·k pairs, and up to m = (ranks − 1)·p rows from its peers. In the order of
// EpExpertDispatcher::regions.
std::array<uint64_t, 9> region_bounds(int ranks, int64_t tokens, uint32_t k, int64_t d) {
  const auto p = static_cast<uint64_t>(tokens) * k;
  const uint64_t m = static_cast<uint64_t>(std::max(ranks - 1, 0)) * p;
  const auto width = static_cast<uint64_t>(d + kRowExtra), f = sizeof(float);
  return {
      24 * p + 8,         // the plan (pack): source and result rows (i64), then the peers' rows'
                          // (id, weight) pairs or the own rows' ids and weights, 8-byte aligned
      p * width * f,      // the rows out
      m * width * f,      // the rows in
      m * d * f,          // their activations
      m * kRowExtra * f,  // their ids and weights
      8 * m + 8,          // the same, checked, as ids (i32) and weights, 8-byte aligned
      p * d * f,          // this rank's own rows
      m * d * f,          // the results served to the peers
      p * d * f,          // every pair's result
  };
}

// The most rows the local dispatcher takes in one call: the rows served to the peers, or this
// rank's own pairs.
int64_t local_rows_bound(int ranks, int64_t tokens, uint32_t k) {
  const int64_t pairs = tokens * k;
  return std::max<int64_t>(int64_t{ranks - 1} * pairs, pairs);
}

}  // namespace

ExpertTiers held_experts(const ExpertPlacement& placement, int rank, uint32_t n_layer) {
  ExpertTiers tiers;
  for (uint32_t l = 0; l < n_layer; ++l) tiers.hot.push_back(placement.held(rank, l));
  return tiers;
}

EpExpertDispatcher::EpExpertDispatcher(Backend& backend, ExpertComm& comm, uint32_t n_expert,
                                       bool overlap)
    : EpExpertDispatcher(backend, comm, ExpertPlacement(n_expert, comm.size()), overlap) {}

EpExpertDispatcher::EpExpertDispatcher(Backend& backend, ExpertComm& comm,
                                       ExpertPlacement placement, bool overlap, bool held_only)
    : backend_(backend),
      comm_(comm),
      placement_(std::move(placement)),
      held_only_(held_only),
      local_(backend),
      exchanges_(overlap && comm.size() > 1) {}  // one rank: nothing travels to overlap

Status EpExpertDispatcher::take_error() {
  Status s = error_;
  error_ = Status::ok();
  return s;
}

const std::vector<int32_t>& EpExpertDispatcher::slots(uint32_t layer) {
  if (layer >= slots_.size()) slots_.resize(layer + 1);
  std::vector<int32_t>& s = slots_[layer];
  if (s.empty()) {
    s.assign(placement_.n_expert(), -1);
    int32_t next = 0;
    for (int32_t e : placement_.held(comm_.rank(), layer))
      s[static_cast<size_t>(e)] = held_only_ ? next++ : e;
  }
  return s;
}

uint32_t EpExpertDispatcher::stack_size(uint32_t layer, uint32_t n_expert) {
  if (!held_only_) return n_expert;
  const std::vector<int32_t>& s = slots(layer);
  return static_cast<uint32_t>(std::count_if(s.begin(), s.end(), [](int32_t v) { return v >= 0; }));
}

void EpExpertDispatcher::reserve(int64_t tokens, uint32_t k, int64_t n_embd, uint32_t n_expert) {
  const std::array<uint64_t, 9> bounds = region_bounds(comm_.size(), tokens, k, n_embd);
  const auto all = regions(*this);
  for (size_t i = 0; i < all.size(); ++i) fit(*all[i], bounds[i]);
  local_.reserve(local_rows_bound(comm_.size(), tokens, k), 1, n_embd, n_expert);
}

uint64_t EpExpertDispatcher::bytes_for(int ranks, int64_t tokens, uint32_t k, int64_t n_embd,
                                       uint32_t n_expert) {
  uint64_t total = 0;
  for (uint64_t b : region_bounds(ranks, tokens, k, n_embd)) total += std::max(b, kMinRegionBytes);
  return total +
         LocalExpertDispatcher::bytes_for(local_rows_bound(ranks, tokens, k), 1, n_embd, n_expert);
}

uint64_t EpExpertDispatcher::buffer_bytes() const {
  uint64_t total = local_.buffer_bytes();
  for (const Region* r : regions(*this)) total += r->buffer ? r->buffer->bytes() : 0;
  return total;
}

void* EpExpertDispatcher::fit(Region& region, size_t bytes) {
  if (!region.buffer || region.buffer->bytes() < bytes) {
    const size_t have = region.buffer ? region.buffer->bytes() : 0;
    region.buffer = backend_.allocate(std::max({bytes, 2 * have, size_t{kMinRegionBytes}}));
  }
  return region.buffer->data();
}

Status EpExpertDispatcher::upload(const void* host, Region& region, size_t bytes) {
  fit(region, bytes);
  if (bytes == 0) return Status::ok();
  return backend_.copy_to_device(host, Tensor::whole(region.buffer.get()), 0, bytes);
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
  // The shared expert runs exactly once, also when the exchange fails before its turn.
  bool ran = false;
  const auto once = [&] {
    if (!std::exchange(ran, true)) meanwhile();
  };
  error_ = exchange(layer, experts, in, once);
  if (!ran) meanwhile();
  if (!error_) return;
  const auto start = Clock::now();
  if (in.n_tokens > 0) {
    backend_.sum_slots(returned_.get<float>(), plan_slot_row_, in.n_tokens, in.k, in.n_embd, out);
  }
  traffic_.combine_seconds += seconds_since(start);
  ++traffic_.exchanges;
}

void EpExpertDispatcher::plan(uint32_t layer, const RoutedTokens& in) {
  const int ranks = comm_.size(), me = comm_.rank();
  const int64_t pairs = in.n_tokens * in.k;
  // Pairs per owning rank; the last entry carries the layer, so ranks out of step notice.
  counts_.assign(static_cast<size_t>(ranks) + 1, 0);
  owners_.resize(static_cast<size_t>(pairs));
  for (size_t i = 0; i < owners_.size(); ++i) {
    owners_[i] = placement_.owner(layer, ids_[i], me);
    ++counts_[static_cast<size_t>(owners_[i])];
  }
  counts_[static_cast<size_t>(ranks)] = layer;
  // Send order: the peers' rows by rank (the segments of the all-to-all). Results come back in
  // the same order, so a pair's send position is also its result row; this rank's own pairs,
  // which never leave it, take the positions after them.
  std::vector<int64_t>& start = starts_;
  start.assign(static_cast<size_t>(ranks), 0);
  int64_t at = 0;
  for (int r = 0; r < ranks; ++r) {
    if (r == me) continue;
    start[static_cast<size_t>(r)] = at;
    at += counts_[static_cast<size_t>(r)];
  }
  own_begin_ = at;
  start[static_cast<size_t>(me)] = at;
  const auto n = static_cast<size_t>(pairs);
  slot_row_.resize(n);
  send_src_.resize(n);
  meta_.resize(static_cast<size_t>(own_begin_) * 2);
  own_ids_.resize(n - static_cast<size_t>(own_begin_));
  own_weights_.resize(own_ids_.size());
  const std::vector<int32_t>& slot = slots(layer);
  for (size_t i = 0; i < n; ++i) {
    const int32_t e = ids_[i];
    const int owner = owners_[i];
    const int64_t pos = start[static_cast<size_t>(owner)]++;
    slot_row_[i] = pos;
    send_src_[static_cast<size_t>(pos)] = static_cast<int64_t>(i) / in.k;
    if (owner == me) {
      const auto j = static_cast<size_t>(pos - own_begin_);
      own_ids_[j] = slot[static_cast<size_t>(e)];
      own_weights_[j] = weights_[i];
      continue;
    }
    meta_[2 * static_cast<size_t>(pos)] = static_cast<float>(e);
    meta_[2 * static_cast<size_t>(pos) + 1] = weights_[i];
  }
}

Status EpExpertDispatcher::pack(const RoutedTokens& in) {
  const int64_t pairs = in.n_tokens * in.k, d = in.n_embd, width = d + kRowExtra;
  const int64_t own = pairs - own_begin_;
  // The whole plan in one copy: on a GPU each copy is a round trip.
  const size_t at[] = {
      stage(send_src_.data(), send_src_.size() * sizeof(int64_t), true),
      stage(slot_row_.data(), slot_row_.size() * sizeof(int64_t)),
      stage(meta_.data(), meta_.size() * sizeof(float)),
      stage(own_ids_.data(), own_ids_.size() * sizeof(int32_t)),
      stage(own_weights_.data(), own_weights_.size() * sizeof(float)),
  };
  if (Status s = upload(staging_.data(), plan_, staging_.size()); !s) return s;
  const auto* base = plan_.get<uint8_t>();
  const auto* src = reinterpret_cast<const int64_t*>(base + at[0]);
  plan_slot_row_ = reinterpret_cast<const int64_t*>(base + at[1]);
  const auto* meta = reinterpret_cast<const float*>(base + at[2]);
  own_ids_dev_ = reinterpret_cast<const int32_t*>(base + at[3]);
  own_weights_dev_ = reinterpret_cast<const float*>(base + at[4]);
  auto* send = static_cast<float*>(fit(send_, static_cast<size_t>(own_begin_ * width) * 4));
  auto* own_x = static_cast<float*>(fit(own_x_, static_cast<size_t>(own * d) * 4));
  if (own_begin_ > 0) {
    backend_.copy_rows(in.x, d, src, own_begin_, d, send, width);
    backend_.copy_rows(meta, kRowExtra, nullptr, own_begin_, kRowExtra, send + d, width);
  }
  if (own > 0) backend_.gather_rows(in.x, d, src + own_begin_, own, own_x);
  // The communicator may read the rows on a stream of its own.
  return backend_.synchronize();
}

void EpExpertDispatcher::expect_step(std::span<const int64_t> tokens_per_rank) {
  step_tokens_.assign(tokens_per_rank.begin(), tokens_per_rank.end());
}

Status EpExpertDispatcher::check_peer_counts(int r, const int64_t* counts, uint32_t k) const {
  const int ranks = comm_.size();
  // A step's rows are its tokens' (token, slot) pairs, each sent to one rank: their sum is at
  // most the tokens the peer announced for the step times k (a micro-batch sends fewer).
  const bool known = step_tokens_.size() == static_cast<size_t>(ranks);
  const int64_t tokens = known ? step_tokens_[static_cast<size_t>(r)] : 0;
  const int64_t bound =
      known && tokens >= 0 && tokens <= int64_t{1} << 32 ? tokens * int64_t{k} : int64_t{1} << 32;
  int64_t sum = 0;
  for (int q = 0; q < ranks; ++q) {
    const int64_t c = counts[q];
    if (c < 0 || c > bound - sum) {
      return Status::error(
          "expert parallelism: rank " + std::to_string(r) + " announced " + std::to_string(c) +
          " rows for rank " + std::to_string(q) + ", beyond the " + std::to_string(bound) +
          " rows " +
          (known ? "of its " + std::to_string(tokens) + " tokens this step" : "allowed"));
    }
    sum += c;
  }
  return Status::ok();
}

Status EpExpertDispatcher::agree_counts(uint32_t layer, int64_t width, uint32_t k) {
  const int ranks = comm_.size(), me = comm_.rank();
  const int64_t n = ranks + 1;
  all_counts_.resize(static_cast<size_t>(n * ranks));
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
    if (Status s = check_peer_counts(r, &all_counts_[static_cast<size_t>(r * n)], k); !s) return s;
    if (r == me) continue;  // this rank's own rows never leave it
    const int64_t from_r = all_counts_[static_cast<size_t>(r * n + me)];
    from_[static_cast<size_t>(r)] = from_r;
    recv_bytes_[static_cast<size_t>(r)] = from_r * width * static_cast<int64_t>(sizeof(float));
    send_bytes_[static_cast<size_t>(r)] =
        counts_[static_cast<size_t>(r)] * width * static_cast<int64_t>(sizeof(float));
    received_ += from_r;
  }
  fit(recv_, static_cast<size_t>(received_ * width) * sizeof(float));
  return Status::ok();
}

Status EpExpertDispatcher::unpack(uint32_t layer, int64_t d) {
  const int me = comm_.rank();
  const int64_t m = received_, width = d + kRowExtra;
  const auto n = static_cast<size_t>(m);
  auto* x = static_cast<float*>(fit(recv_x_, n * static_cast<size_t>(d) * sizeof(float)));
  auto* meta = static_cast<float*>(fit(recv_meta_dev_, n * kRowExtra * sizeof(float)));
  if (m > 0) {
    backend_.copy_rows(recv_.get<float>(), width, nullptr, m, d, x, d);
    backend_.copy_rows(recv_.get<float>() + d, width, nullptr, m, kRowExtra, meta, kRowExtra);
  }
  recv_meta_.resize(n * kRowExtra);
  if (m > 0) {
    if (Status s = backend_.read_back(meta, recv_meta_.data(), recv_meta_.size() * sizeof(float));
        !s)
      return s;
  }
  // A peer's row names its expert: check it before any kernel indexes a stack with it.
  const std::vector<int32_t>& slot = slots(layer);
  recv_ids_.resize(n);
  recv_weights_.resize(n);
  for (size_t j = 0; j < n; ++j) {
    const float id = recv_meta_[kRowExtra * j];
    const bool whole = std::isfinite(id) && id >= 0 && std::floor(id) == id &&
                       id < static_cast<float>(slot.size());
    const int32_t s = whole ? slot[static_cast<size_t>(id)] : -1;
    if (s < 0) {
      return Status::error("expert parallelism: rank " + std::to_string(me) +
                           " got a row for expert " + std::to_string(id) +
                           ", which it does not hold");
    }
    recv_ids_[j] = s;
    recv_weights_[j] = recv_meta_[kRowExtra * j + 1];
  }
  const size_t ids_at = stage(recv_ids_.data(), n * sizeof(int32_t), true);
  const size_t weights_at = stage(recv_weights_.data(), n * sizeof(float));
  if (Status s = upload(staging_.data(), recv_plan_, staging_.size()); !s) return s;
  recv_ids_dev_ = reinterpret_cast<const int32_t*>(recv_plan_.get<uint8_t>() + ids_at);
  recv_weights_dev_ = reinterpret_cast<const float*>(recv_plan_.get<uint8_t>() + weights_at);
  return Status::ok();
}

size_t EpExpertDispatcher::stage(const void* host, size_t bytes, bool first) {
  if (first) staging_.clear();
  const size_t at = (staging_.size() + 7) / 8 * 8;  // every array 8-byte aligned
  staging_.resize(at + bytes);
  if (bytes > 0) std::memcpy(staging_.data() + at, host, bytes);
  return at;
}

// The hidden exchange time of the job just waited for, and the part that was not hidden.
void EpExpertDispatcher::account(double exposed, double& phase_seconds) {
  phase_seconds += exposed;
  traffic_.overlapped_seconds += std::max(0.0, exchanges_.last_job_seconds() - exposed);
}

Status EpExpertDispatcher::exchange(uint32_t layer, const ExpertFfnWeights& experts,
                                    const RoutedTokens& in, FunctionRef<void()> meanwhile) {
  auto clock = Clock::now();
  const int me = comm_.rank(), ranks = comm_.size();
  const int64_t pairs = in.n_tokens * in.k, d = in.n_embd, width = d + kRowExtra;
  // (1) The routing to the host (the plan's input), checked before anything indexes with it.
  Status s = read_back_routing(backend_, in, placement_.n_expert(), ids_, weights_);
  if (!s) return Status::error("expert parallelism: " + s.message());
  plan(layer, in);
  if (s = pack(in); !s) return s;
  const int64_t own = counts_[static_cast<size_t>(me)], from_peers = own_begin_;
  if (s = agree_counts(layer, width, in.k); !s) return s;
  traffic_.dispatch_seconds += seconds_since(clock);
  // (2) Rows to the ranks owning their experts, while the shared expert runs here. The jobs live
  // until their wait() below: the exchange thread holds only references to them.
  const auto send = [this] {
    return comm_.all_to_all(send_.get<float>(), send_bytes_, recv_.get<float>(), recv_bytes_);
  };
  exchanges_.start(send);
  meanwhile();
  double exposed = 0;
  s = exchanges_.wait(&exposed);
  account(exposed, traffic_.dispatch_seconds);
  if (!s) return s;
  traffic_.dispatch_bytes += total(send_bytes_);
  rows_sent_ += static_cast<uint64_t>(from_peers);
  clock = Clock::now();
  if (s = unpack(layer, d); !s) return s;
  traffic_.dispatch_seconds += seconds_since(clock);
  // (3) The peers' rows through this rank's experts (one slot per row: each comes back
  // weighted, unsummed).
  clock = Clock::now();
  const uint32_t stacks = stack_size(layer, in.n_expert);
  auto* served =
      static_cast<float*>(fit(served_, static_cast<size_t>(received_ * d) * sizeof(float)));
  if (received_ > 0) {
    local_.dispatch_combine(
        layer, experts,
        {recv_x_.get<float>(), recv_ids_dev_, recv_weights_dev_, received_, 1, d, stacks}, served,
        [] {});
  }
  if (s = backend_.synchronize(); !s) return s;
  rows_served_ += static_cast<uint64_t>(received_);
  traffic_.expert_seconds += seconds_since(clock);
  // (4) Their results back, arriving in this rank's send order without its own rows, while this
  // rank's own rows run through its experts into the place after them.
  clock = Clock::now();
  for (int r = 0; r < ranks; ++r) {
    send_bytes_[static_cast<size_t>(r)] =
        from_[static_cast<size_t>(r)] * d * static_cast<int64_t>(sizeof(float));
    recv_bytes_[static_cast<size_t>(r)] =
        r == me ? 0 : counts_[static_cast<size_t>(r)] * d * static_cast<int64_t>(sizeof(float));
  }
  auto* returned =
      static_cast<float*>(fit(returned_, static_cast<size_t>(pairs * d) * sizeof(float)));
  traffic_.combine_seconds += seconds_since(clock);
  const auto send_back = [this, served, returned] {
    return comm_.all_to_all(served, send_bytes_, returned, recv_bytes_);
  };
  exchanges_.start(send_back);
  clock = Clock::now();
  if (own > 0) {
    local_.dispatch_combine(
        layer, experts, {own_x_.get<float>(), own_ids_dev_, own_weights_dev_, own, 1, d, stacks},
        returned + from_peers * d, [] {});
  }
  traffic_.expert_seconds += seconds_since(clock);
  s = exchanges_.wait(&exposed);
  account(exposed, traffic_.combine_seconds);
  traffic_.combine_bytes += total(send_bytes_);
  return s;
}

}  // namespace v4
