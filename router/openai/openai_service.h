// The HTTP API over an EngineClient (docs/design.md, router): routes /v1/models, /health and
// /metrics itself, and the POST routes of its ApiFronts — OpenAI's /v1/chat/completions and
// /v1/completions always, others (router/anthropic's Messages API) as given; checks the API
// key, the model name and the queue limit; hands each generation request to a CompletionJob.
#pragma once

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model/text/tokenizer.h"
#include "router/http/http_server.h"
#include "router/openai/api_front.h"
#include "router/openai/completion_job.h"
#include "router/openai/engine_client.h"
#include "router/openai/metrics.h"
#include "router/openai/openai_front.h"

namespace v4::router {

struct ServiceOptions {
  std::string model_name = "deepseek-v4-flash";
  // "": no authentication. Else /v1 requests carry it as 'Authorization: Bearer KEY' (OpenAI's
  // SDKs) or 'x-api-key: KEY' (Anthropic's).
  std::string api_key;
  bool cors = false;  // answer CORS preflight requests (the server adds the allow-origin)
  // Requests admitted but without a first engine event; beyond this, 429 with Retry-After.
  uint32_t max_queue = 256;
  int64_t created = 0;  // /v1/models "created"
  // Responses' system_fingerprint: changes when the serving configuration does.
  std::string system_fingerprint;
  // Threads that parse, render and tokenize generation requests. That work scales with what a
  // client sends, so it stays off the HTTP threads, which must keep answering /health.
  unsigned request_threads = 2;
  // Bounds of the tool-call replay store (tool_call_replay_store.h): generated calls whose
  // exact DSML a follow-up turn renders.
  size_t tool_call_replay_entries = 65536;
  size_t tool_call_replay_bytes = size_t{64} << 20;
};

class OpenAiService {
 public:
  // `fronts`: APIs served next to OpenAI's; each is asked first about the paths it owns.
  OpenAiService(ServiceOptions options, const Tokenizer& tokenizer, EngineClient& engine,
                ServerMetrics& metrics, std::vector<std::unique_ptr<ApiFront>> fronts = {});
  ~OpenAiService();  // stop()s

  // The HttpHandler.
  void handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange);
  // New generation requests get 503 from now on (graceful drain).
  void stop_accepting() { accepting_ = false; }
  // Stops accepting and waits for the request threads; call before the engine goes away.
  void stop();
  // Ends every generation request in flight now (CompletionJob::shutdown): each gets its final
  // event or an error body, and the engine work is cancelled.
  void cancel_all();
  size_t active_requests() const;

 private:
  // Runs serve() on a request thread.
  void start_serve(const ApiFront& front, RouteKind kind, HttpRequest request,
                   std::shared_ptr<HttpExchange> exchange, Clock::time_point arrival);
  void serve(const ApiFront& front, RouteKind kind, const HttpRequest& request,
             const std::shared_ptr<HttpExchange>& exchange, Clock::time_point arrival);
  void start_job(const ApiFront& front, const HttpRequest& http, const OpenAiRequest& request,
                 PreparedRequest prepared, const std::shared_ptr<HttpExchange>& exchange,
                 Clock::time_point arrival, double setup_seconds);
  // The front whose shapes the answers for `path` take.
  const ApiFront& front_for(std::string_view path) const;
  std::string handler_label(const std::string& path) const;
  void reply_error(const std::shared_ptr<HttpExchange>& exchange, const std::string& handler,
                   const ApiFront& front, const ApiError& error, HttpHeaders headers = {});
  void reply_json(const std::shared_ptr<HttpExchange>& exchange, const std::string& handler,
                  int status, std::string body);
  bool authorized(const HttpRequest& request) const;

  ServiceOptions options_;
  ToolCallReplayStore replay_store_;
  JobEnvironment env_;
  OpenAiFront openai_front_;
  std::vector<std::unique_ptr<ApiFront>> fronts_;
  std::atomic<bool> accepting_{true};
  std::atomic<bool> shutting_down_{false};
  mutable std::mutex mutex_;
  uint64_t next_job_ = 1;
  std::map<uint64_t, std::weak_ptr<CompletionJob>> jobs_;
  // Last member: joined first, while everything its work touches is alive.
  boost::asio::thread_pool request_pool_;
};

// Equal strings in time that depends only on their lengths (API keys).
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace v4::router
