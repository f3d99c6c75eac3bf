// One generation request in flight: its choices' engine requests, their output readers, and
// the response — whole, or streamed as server-sent events — written through the API's
// ResponseWriter when every choice is done. Engine events arrive on an engine thread; a job
// serialises them with its own mutex and does only light work there (detokenize, parse,
// format, queue a write).
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
#include "router/openai/response_writer.h"
#include "router/openai/tool_call_replay_store.h"

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
  // Where each returned tool call's DSML is recorded for replay (none: not recorded).
  ToolCallReplayStore* tool_call_replay = nullptr;
};

// What differs between the APIs a job answers (api_front.h): the response's shapes, the
// route's metrics label, and how tool-call ids are spelled.
struct JobSetup {
  std::unique_ptr<ResponseWriter> writer;
  std::string handler;
  // A call's id is this prefix + its index (+ the choice's index and "_" before it when a
  // request has several choices). Fronts make the prefix unique per request: the replay store
  // keys calls by id.
  std::string tool_call_id_prefix = "call_";
};

class CompletionJob : public std::enable_shared_from_this<CompletionJob> {
 public:
  // Submits every choice and wires disconnects to cancellation. `setup_seconds` is the router
  // time already spent (parse, render, tokenize). `on_end` runs once the response has ended.
  static std::shared_ptr<CompletionJob> start(JobEnvironment& env, const OpenAiRequest& request,
                                              PreparedRequest prepared, JobSetup setup,
                                              std::shared_ptr<HttpExchange> exchange,
                                              Clock::time_point arrival, double setup_seconds,
                                              std::function<void()> on_end);

  // Cancels every choice still generating; each still ends with a final event to the client.
  void cancel();
  // Ends the response now, without waiting for the engine (the server is shutting down): the
  // writer gives a stream its final events and a whole response an error body.
  void shutdown();

  CompletionJob(JobEnvironment& env, std::shared_ptr<HttpExchange> exchange);

 private:
  struct Choice {
    std::optional<ChoiceOutput> output;
    EngineRequestId engine_id = 0;
    bool submitted = false;
    bool final_event = false;  // the engine's last event arrived
    bool first_event = false;
    bool prompt_reported = false;  // echo and prompt scores taken from the first event
    size_t prompt = 0;
    Clock::time_point last_token{};
  };

  Status submit_all(const PreparedRequest& prepared, std::optional<uint64_t> seed);
  void on_event(size_t index, EngineEvent event);
  bool report_prompt(size_t index, const EngineEvent& event);
  void finish_if_done();
  void fail(const std::string& message);
  // Records the calls `delta` releases in the replay store, before the client can see them.
  void record_tool_calls(const ChoiceOutput& output, const ChoiceDelta& delta);
  // Logs and counts what broke the chat format in a finished choice (ChoiceOutput::warnings).
  void report_warnings(size_t index, const ChoiceOutput& output);
  void reject(const std::string& message);
  void on_disconnect();
  void run_on_end();
  Usage usage() const;
  std::vector<const ChoiceOutput*> outputs() const;
  void end(int status, const std::string& finish_reason);

  JobEnvironment& env_;
  std::shared_ptr<HttpExchange> exchange_;
  std::mutex mutex_;
  std::unique_ptr<ResponseWriter> writer_;
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
