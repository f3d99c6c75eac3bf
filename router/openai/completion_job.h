// One chat or completion request in flight: its choices' engine requests, their output readers,
// and the response — whole, or streamed as server-sent events — written when every choice is
// done. Engine events arrive on an engine thread; a job serialises them with its own mutex and
// does only light work there (detokenize, parse, format, queue a write).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/thread_cpu_clock.h"
#include "model/text/tokenizer.h"
#include "router/http/http_server.h"
#include "router/openai/choice_output.h"
#include "router/openai/choice_prompt.h"
#include "router/openai/engine_client.h"
#include "router/openai/metrics.h"
#include "router/openai/openai_request.h"
#include "router/openai/openai_response.h"
#include "router/openai/prompt_builder.h"

namespace v4::router {

using Clock = std::chrono::steady_clock;

// What every job shares, owned by the service.
struct JobEnvironment {
  const Tokenizer& tokenizer;
  EngineClient& engine;
  ServerMetrics& metrics;
  std::string model_name;
  std::string system_fingerprint;
  std::atomic<uint32_t> waiting{0};  // jobs without a first engine event yet (--max-queue)
};

class CompletionJob : public std::enable_shared_from_this<CompletionJob> {
 public:
  // Submits every choice and wires disconnects to cancellation. `setup_seconds` is the router
  // time already spent (parse, render, tokenize). `on_end` runs once the response has ended.
  static std::shared_ptr<CompletionJob> start(JobEnvironment& env, const OpenAiRequest& request,
                                              PreparedRequest prepared,
                                              std::shared_ptr<HttpExchange> exchange,
                                              Clock::time_point arrival, double setup_seconds,
                                              std::function<void()> on_end);

  // Cancels every choice still generating; each still ends with a final event to the client.
  void cancel();
  // Ends the response now, without waiting for the engine (the server is shutting down): a
  // stream gets a final chunk with finish_reason "abort" for every unfinished choice, the usage
  // chunk when asked for, and [DONE]; a whole response gets a 503 error body.
  void shutdown();

  CompletionJob(JobEnvironment& env, std::shared_ptr<HttpExchange> exchange);

 private:
  struct Choice {
    std::optional<ChoiceOutput> output;
    EngineRequestId engine_id = 0;
    bool submitted = false;
    bool final_event = false;  // the engine's last event arrived
    bool first_event = false;
    bool finish_sent = false;
    bool prompt_reported = false;  // echo and prompt scores taken from the first event
    size_t prompt = 0;
    Clock::time_point last_token{};
  };

  Status submit_all(const PreparedRequest& prepared, std::optional<uint64_t> seed);
  void on_event(size_t index, EngineEvent event);
  bool report_prompt(size_t index, const EngineEvent& event);
  void stream_delta(size_t index, const ChoiceDelta& delta);
  void finish_if_done();
  void fail(const std::string& message);
  void reject(const std::string& message);
  void on_disconnect();
  void run_on_end();
  Usage usage() const;
  void end(int status, const std::string& finish_reason);

  JobEnvironment& env_;
  std::shared_ptr<HttpExchange> exchange_;
  std::mutex mutex_;
  ResponseMeta meta_;
  bool stream_ = false;
  bool include_usage_ = false;
  std::vector<Choice> choices_;
  std::vector<uint32_t> prompt_tokens_;
  std::vector<ChoicePrompt> choice_prompts_;  // per choice
  std::vector<PreparedPrompt> prompts_;       // kept when a choice scores its prompt
  Clock::time_point arrival_;
  bool first_token_seen_ = false;
  Clock::time_point first_token_{};
  uint32_t max_tokens_ = 0;  // as resolved (metrics)
  bool counted_waiting_ = false;
  double queue_seconds_ = 0.0;
  double router_seconds_ = 0.0;
  bool ended_ = false;
  std::string handler_;
  std::function<void()> on_end_;
};

}  // namespace v4::router
