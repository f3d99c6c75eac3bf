#include "router/grpc/routing_policy.h"

#include <algorithm>

namespace v4::router_grpc {
namespace {

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

}  // namespace

std::vector<uint64_t> page_hash_chain(std::span<const int32_t> prompt, uint32_t page_tokens) {
  std::vector<uint64_t> chain;
  if (page_tokens == 0) return chain;
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (size_t page = 0; (page + 1) * page_tokens <= prompt.size(); ++page) {
    for (size_t i = page * page_tokens; i < (page + 1) * page_tokens; ++i)
      h = mix(h ^ static_cast<uint32_t>(prompt[i]));
    chain.push_back(h);
  }
  return chain;
}

Result<RoutingMode> routing_mode_from_name(const std::string& name) {
  if (name == "affinity") return RoutingMode::kAffinity;
  if (name == "p2c") return RoutingMode::kPowerOfTwo;
  if (name == "round-robin") return RoutingMode::kRoundRobin;
  return Status::error("unknown routing policy '" + name + "' (affinity, p2c, round-robin)");
}

RoutingPolicy::RoutingPolicy(RoutingOptions options) : options_(options), rng_(options.seed) {}

void RoutingPolicy::set_page_tokens(uint32_t page_tokens) {
  if (page_tokens == options_.page_tokens) return;
  options_.page_tokens = page_tokens;
  table_.clear();
  lru_.clear();
}

std::optional<size_t> RoutingPolicy::power_of_two(std::span<const WorkerLoad> workers) {
  std::vector<size_t> usable;
  for (size_t i = 0; i < workers.size(); ++i)
    if (workers[i].usable) usable.push_back(i);
  if (usable.empty()) return std::nullopt;
  if (usable.size() == 1) return usable[0];
  const size_t a = usable[rng_() % usable.size()];
  size_t b = usable[rng_() % (usable.size() - 1)];
  if (b == a) b = usable.back();
  // Fewer outstanding tokens wins; then more free pages.
  const WorkerLoad& x = workers[a];
  const WorkerLoad& y = workers[b];
  if (x.outstanding != y.outstanding) return x.outstanding < y.outstanding ? a : b;
  return x.pages_free >= y.pages_free ? a : b;
}

void RoutingPolicy::remember(const std::vector<uint64_t>& chain, size_t worker) {
  for (uint64_t h : chain) {
    auto it = table_.find(h);
    if (it != table_.end()) {
      lru_.erase(it->second.lru);
      table_.erase(it);
    }
    lru_.push_front(h);
    table_.emplace(h, Entry{worker, lru_.begin()});
  }
  while (table_.size() > options_.max_entries) {
    table_.erase(lru_.back());
    lru_.pop_back();
  }
}

void RoutingPolicy::forget(size_t worker) {
  for (auto it = table_.begin(); it != table_.end();) {
    if (it->second.worker == worker) {
      lru_.erase(it->second.lru);
      it = table_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<RoutingPolicy::Choice> RoutingPolicy::pick(std::span<const int32_t> prompt,
                                                         std::span<const WorkerLoad> workers) {
  if (options_.mode == RoutingMode::kRoundRobin) {
    for (size_t k = 0; k < workers.size(); ++k) {
      const size_t i = (next_round_robin_ + k) % workers.size();
      if (!workers[i].usable) continue;
      next_round_robin_ = i + 1;
      return Choice{i, 0};
    }
    return std::nullopt;
  }
  if (options_.mode == RoutingMode::kPowerOfTwo) {
    std::optional<size_t> w = power_of_two(workers);
    if (!w) return std::nullopt;
    return Choice{*w, 0};
  }
  const std::vector<uint64_t> chain = page_hash_chain(prompt, options_.page_tokens);
  // The longest remembered prefix on a usable worker.
  std::optional<Choice> preferred;
  for (size_t k = chain.size(); k-- > 0 && !preferred;) {
    auto it = table_.find(chain[k]);
    if (it != table_.end() && it->second.worker < workers.size() &&
        workers[it->second.worker].usable)
      preferred = Choice{it->second.worker, static_cast<uint32_t>(k + 1)};
  }
  std::optional<Choice> choice;
  if (preferred) {
    uint64_t least = UINT64_MAX;
    for (const WorkerLoad& w : workers)
      if (w.usable) least = std::min(least, w.outstanding);
    const WorkerLoad& w = workers[preferred->worker];
    const uint64_t bound =
        static_cast<uint64_t>(options_.balance_rel * static_cast<double>(least)) +
        options_.balance_abs;
    const uint64_t uncached =
        prompt.size() - uint64_t{preferred->affinity_pages} * options_.page_tokens;
    const bool fits = !w.pages_known || uint64_t{w.pages_free} * options_.page_tokens >= uncached;
    if (w.outstanding <= bound && fits) choice = preferred;
  }
  if (!choice) {
    std::optional<size_t> w = power_of_two(workers);
    if (!w) return std::nullopt;
    choice = Choice{*w, 0};
  }
  remember(chain, choice->worker);
  return choice;
}

}  // namespace v4::router_grpc
