// The OpenAI-compatible HTTP API over an EngineClient (docs/design.md, router): routes
// /v1/chat/completions, /v1/completions, /v1/models, /health and /metrics; checks the API key,
// the model name and the queue limit; hands each generation request to a CompletionJob.
#pragma once

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "model/text/tokenizer.h"
#include "router/http/http_server.h"
#include "router/openai/completion_job.h"
#include "router/openai/engine_client.h"
#include "router/openai/metrics.h"

namespace v4::router {

struct ServiceOptions {
  std::string model_name = "deepseek-v4-flash";
  std::string api_key;  // "": no authentication
  bool cors = false;    // answer CORS preflight requests (the server adds the allow-origin)
  // Requests admitted but without a first engine event; beyond this, 429 with Retry-After.
  uint32_t max_queue = 256;
  int64_t created = 0;  // /v1/models "created"
  // Responses' system_fingerprint: changes when the serving configuration does.
  std::string system_fingerprint;
  // Threads that parse, render and tokenize generation requests. That work scales with what a
  // client sends, so it stays off the HTTP threads, which must keep answering /health.
  unsigned request_threads = 2;
};

class OpenAiService {
 public:
  OpenAiService(ServiceOptions options, const Tokenizer& tokenizer, EngineClient& engine,
                ServerMetrics& metrics);
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
  // Runs generate() on a request thread.
  void start_generate(Endpoint endpoint, HttpRequest request,
                      std::shared_ptr<HttpExchange> exchange, Clock::time_point arrival);
  void generate(Endpoint endpoint, const HttpRequest& request,
                const std::shared_ptr<HttpExchange>& exchange, Clock::time_point arrival);
  void reply_error(const std::shared_ptr<HttpExchange>& exchange, const std::string& handler,
                   const ApiError& error, HttpHeaders headers = {});
  void reply_json(const std::shared_ptr<HttpExchange>& exchange, const std::string& handler,
                  int status, std::string body);
  bool authorized(const HttpRequest& request) const;

  ServiceOptions options_;
  JobEnvironment env_;
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
