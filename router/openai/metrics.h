// Prometheus metrics of the server (GET /metrics). Names follow vLLM's where the meaning is the
// same, with the prefix `v4serve:`; the README lists every one. Request-level series are
// observed as requests progress; engine-level series are refreshed from an EngineSnapshot at
// each scrape (counters and histograms advance by the difference since the last scrape).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "router/openai/engine_client.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace v4::router {

// What a generation request reports when it ends (CompletionJob).
struct FinishedRequest {
  double e2e_seconds = 0.0;
  double queue_seconds = 0.0;  // before its first engine step
  // From arrival to the first generated token; none when no token came.
  std::optional<double> first_token_seconds;
  double decode_seconds = 0.0;  // first token to last token
  uint32_t prompt_tokens = 0;
  uint32_t generation_tokens = 0;      // over all choices
  uint32_t max_generation_tokens = 0;  // of the longest choice
  uint32_t n = 1;                      // the request's n
  uint32_t max_tokens = 0;             // the request's max_tokens as resolved
  std::string finish_reason;
};

class ServerMetrics {
 public:
  // `expert_detail`: one counter per (layer, expert), 43 × 256 ≈ 11k series on the real model.
  // Without it, the expert load is summarised per layer (selections, max/mean imbalance).
  explicit ServerMetrics(std::string model_name, bool expert_detail = false);
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // One HTTP request answered (`status` 499: the client went away first).
  void http_request(const std::string& handler, int status);
  void time_to_first_token(double seconds);
  void inter_token_latency(double seconds);
  // A generation request ended: latencies and their phases, token counts, parameters, reason.
  void request_finished(const FinishedRequest& request);
  // vLLM's cache_config_info: a gauge of 1 whose labels describe the KV cache configuration.
  void set_cache_config(const std::vector<std::pair<std::string, std::string>>& labels);
  // Server time of one request outside the engine: HTTP parsing and writing, JSON parsing,
  // rendering, tokenizing, detokenizing, JSON output.
  void request_overhead(double seconds);
  // The model's output broke the chat format (spec §5.8) and was returned as content instead:
  // malformed DSML markup, or an output that ended in its reasoning without </think>.
  void malformed_output();
  // Tool calls a request sent back that rendered from the replay store's exact DSML.
  void tool_calls_replayed(size_t calls);

  // Where other parts of the server register their own series (the gRPC router's, for one).
  prometheus::Registry& registry() { return *registry_; }

  // The text exposition format, after refreshing engine series from `snapshot`.
  std::string scrape(const EngineSnapshot& snapshot);

 private:
  void refresh(const EngineSnapshot& snapshot);
  void advance(prometheus::Histogram& histogram, const EngineHistogram& now, EngineHistogram& last);
  void refresh_expert_load(const EngineSnapshot& now);
  void refresh_group_traffic(const EngineGroupTraffic& now);
  void refresh_speculative(const EngineSnapshot& now);

  std::mutex mutex_;  // scrape() against itself; prometheus-cpp metrics are thread-safe
  std::string model_;
  bool expert_detail_;
  std::shared_ptr<prometheus::Registry> registry_;
  struct Series;
  std::unique_ptr<Series> s_;
  EngineSnapshot last_;
};

}  // namespace v4::router
