// Which worker a request goes to (docs/design.md, router): prefix affinity bounded by load,
// power of two choices otherwise. Affinity keys are the hash chain of the prompt's leading full
// KV pages (the worker's prefix cache keys the same pages), remembered per worker as requests
// are routed, so a conversation's next turn, whose prompt extends the last one, lands where
// its pages are cached (SGLang's approximate cache-aware routing, token ids instead of a tree).
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace v4::router_grpc {

// What the router knows of one worker when it routes.
struct WorkerLoad {
  bool usable = false;       // connected, healthy, not draining
  uint64_t outstanding = 0;  // tokens its open requests still need (prompt + remaining output)
  uint32_t pages_free = 0;   // from its last Stats (free plus evictable cached pages)
  bool pages_known = false;  // a Stats answer has arrived
};

enum class RoutingMode { kAffinity, kPowerOfTwo, kRoundRobin };

struct RoutingOptions {
  RoutingMode mode = RoutingMode::kAffinity;
  uint32_t page_tokens = 256;  // the workers' KV page size
  // Affinity holds while the preferred worker's outstanding tokens stay within
  // balance_rel × (the least loaded worker's) + balance_abs, and its free pages hold the
  // uncached rest of the prompt (SGLang's --balance-rel-threshold / --balance-abs-threshold).
  double balance_rel = 1.5;
  uint64_t balance_abs = 4096;
  size_t max_entries = 1 << 18;  // remembered page hashes; least recently used go first
  uint64_t seed = 0x243f6a8885a308d3ull;
};

// Hash chain over full pages: element k covers tokens [0, (k+1)·page_tokens).
std::vector<uint64_t> page_hash_chain(std::span<const int32_t> prompt, uint32_t page_tokens);

Result<RoutingMode> routing_mode_from_name(const std::string& name);

class RoutingPolicy {
 public:
  explicit RoutingPolicy(RoutingOptions options);

  struct Choice {
    size_t worker = 0;
    uint32_t affinity_pages = 0;  // leading pages the chosen worker is believed to hold
  };
  // The worker for `prompt`, or nothing when none is usable. Remembers the choice.
  std::optional<Choice> pick(std::span<const int32_t> prompt, std::span<const WorkerLoad> workers);
  // The worker lost its cache (it restarted or was ejected): forget what it held.
  void forget(size_t worker);
  const RoutingOptions& options() const { return options_; }
  void set_page_tokens(uint32_t page_tokens);

 private:
  std::optional<size_t> power_of_two(std::span<const WorkerLoad> workers);
  void remember(const std::vector<uint64_t>& chain, size_t worker);

  struct Entry {
    size_t worker;
    std::list<uint64_t>::iterator lru;
  };
  RoutingOptions options_;
  std::mt19937_64 rng_;
  size_t next_round_robin_ = 0;
  std::unordered_map<uint64_t, Entry> table_;
  std::list<uint64_t> lru_;  // most recent first
};

}  // namespace v4::router_grpc
