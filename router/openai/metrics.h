// Prometheus metrics of the server (GET /metrics). Names follow vLLM's where the meaning is the
// same, with the prefix `v4serve:`; the README lists every one. Request-level series are
// observed as requests progress; engine-level series are refreshed from an EngineSnapshot at
// each scrape (counters and histograms advance by the difference since the last scrape).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
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

class ServerMetrics {
 public:
  explicit ServerMetrics(std::string model_name);
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // One HTTP request answered (`status` 499: the client went away first).
  void http_request(const std::string& handler, int status);
  void time_to_first_token(double seconds);
  void inter_token_latency(double seconds);
  // A generation request ended: end-to-end latency, engine queue time, token counts, reason.
  void request_finished(double e2e_seconds, double queue_seconds, uint32_t prompt_tokens,
                        uint32_t generation_tokens, const std::string& finish_reason);
  // Server time of one request outside the engine: HTTP parsing and writing, JSON parsing,
  // rendering, tokenizing, detokenizing, JSON output.
  void request_overhead(double seconds);

  // The text exposition format, after refreshing engine series from `snapshot`.
  std::string scrape(const EngineSnapshot& snapshot);

 private:
  void refresh(const EngineSnapshot& snapshot);
  void advance(prometheus::Histogram& histogram, const EngineHistogram& now, EngineHistogram& last);

  std::mutex mutex_;  // scrape() against itself; prometheus-cpp metrics are thread-safe
  std::string model_;
  std::shared_ptr<prometheus::Registry> registry_;
  struct Series;
  std::unique_ptr<Series> s_;
  EngineSnapshot last_;
};

}  // namespace v4::router
