#include "router/openai/openai_service.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "core/thread_cpu_clock.h"

namespace v4::router {

namespace {

bool is_api_path(const std::string& path) { return path.rfind("/v1/", 0) == 0; }

// Handler label for metrics: known routes by name, everything else as "other" so that
// arbitrary paths cannot grow the series without bound.
std::string handler_label(const std::string& path) {
  for (const char* known :
       {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics"})
    if (path == known) return path;
  return "other";
}

}  // namespace

bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

OpenAiService::OpenAiService(ServiceOptions options, const Tokenizer& tokenizer,
                             EngineClient& engine, ServerMetrics& metrics)
    : options_(std::move(options)),
      env_{tokenizer, engine, metrics, options_.model_name, options_.system_fingerprint},
      request_pool_(options_.request_threads == 0 ? 1 : options_.request_threads) {}

OpenAiService::~OpenAiService() { stop(); }

void OpenAiService::stop() {
  accepting_ = false;
  request_pool_.join();
}

bool OpenAiService::authorized(const HttpRequest& request) const {
  if (options_.api_key.empty()) return true;
  const std::string header = request.header("authorization");
  const std::string prefix = "Bearer ";
  if (header.size() < prefix.size() || header.compare(0, prefix.size(), prefix) != 0) return false;
  return constant_time_equal(header.substr(prefix.size()), options_.api_key);
}

void OpenAiService::reply_json(const std::shared_ptr<HttpExchange>& exchange,
                               const std::string& handler, int status, std::string body) {
  exchange->respond(status, "application/json", std::move(body));
  env_.metrics.http_request(handler, status);
}

void OpenAiService::reply_error(const std::shared_ptr<HttpExchange>& exchange,
                                const std::string& handler, const ApiError& error,
                                HttpHeaders headers) {
  exchange->respond(error.status, "application/json", api_error_json(error), std::move(headers));
  env_.metrics.http_request(handler, error.status);
}

void OpenAiService::handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange) {
  const Clock::time_point arrival = Clock::now();
  const std::string handler = handler_label(request.path);
  try {
    if (request.method == "OPTIONS" && options_.cors) {
      exchange->respond(204, "text/plain", "",
                        {{"Access-Control-Allow-Methods", "GET, POST, OPTIONS"},
                         {"Access-Control-Allow-Headers", "Authorization, Content-Type"},
                         {"Access-Control-Max-Age", "600"}});
      return;
    }
    if (is_api_path(request.path) && !authorized(request)) {
      reply_error(exchange, handler,
                  unauthorized("Incorrect API key provided. Pass it as 'Authorization: Bearer "
                               "KEY'."));
      return;
    }
    const bool get = request.method == "GET", post = request.method == "POST";
    if (request.path == "/health" && get) {
      const bool ok = env_.engine.snapshot().healthy && accepting_;
      reply_json(exchange, handler, ok ? 200 : 503,
                 ok ? R"({"status":"ok"})" : R"({"status":"unavailable"})");
    } else if (request.path == "/metrics" && get) {
      exchange->respond(200, "text/plain; version=0.0.4; charset=utf-8",
                        env_.metrics.scrape(env_.engine.snapshot()));
      env_.metrics.http_request(handler, 200);
    } else if (request.path == "/v1/models" && get) {
      reply_json(exchange, handler, 200,
                 models_json(options_.model_name, options_.created, env_.engine.max_context()));
    } else if (request.path == "/v1/chat/completions" && post) {
      start_generate(Endpoint::kChat, std::move(request), exchange, arrival);
    } else if (request.path == "/v1/completions" && post) {
      start_generate(Endpoint::kCompletions, std::move(request), exchange, arrival);
    } else if (handler != "other") {
      ApiError e =
          invalid_request("method " + request.method + " is not allowed on " + request.path);
      e.status = 405;
      reply_error(exchange, handler, e);
    } else {
      reply_error(exchange, handler, not_found("no route for " + request.path));
    }
  } catch (const std::exception& e) {
    spdlog::error("{} {}: {}", request.method, request.path, e.what());
    reply_error(exchange, handler, server_error(std::string("internal error: ") + e.what()));
  }
}

void OpenAiService::start_generate(Endpoint endpoint, HttpRequest request,
                                   std::shared_ptr<HttpExchange> exchange,
                                   Clock::time_point arrival) {
  boost::asio::post(request_pool_, [this, endpoint, request = std::move(request),
                                    exchange = std::move(exchange), arrival] {
    try {
      generate(endpoint, request, exchange, arrival);
    } catch (const std::exception& e) {
      spdlog::error("{} {}: {}", request.method, request.path, e.what());
      reply_error(exchange, handler_label(request.path),
                  server_error(std::string("internal error: ") + e.what()));
    }
  });
}

void OpenAiService::generate(Endpoint endpoint, const HttpRequest& http,
                             const std::shared_ptr<HttpExchange>& exchange,
                             Clock::time_point arrival) {
  const ThreadCpuClock::time_point cpu_start = ThreadCpuClock::now();
  const std::string handler = handler_label(http.path);
  if (!accepting_) {
    reply_error(exchange, handler, server_error("the server is shutting down", 503));
    return;
  }
  OpenAiRequest request;
  if (std::optional<ApiError> e =
          parse_openai_request(endpoint, http.body, env_.tokenizer.vocab_size(), request)) {
    reply_error(exchange, handler, *e);
    return;
  }
  if (request.model != options_.model_name) {
    reply_error(exchange, handler,
                not_found("The model `" + request.model + "` does not exist.", "model_not_found"));
    return;
  }
  if (!env_.engine.ready()) {
    reply_error(exchange, handler, server_error("no worker is available to serve requests", 503),
                {{"Retry-After", "1"}});
    return;
  }
  if (env_.waiting.load() >= options_.max_queue) {
    reply_error(exchange, handler,
                overloaded("too many requests are waiting (" + std::to_string(options_.max_queue) +
                           "); retry later"),
                {{"Retry-After", "1"}});
    return;
  }
  PreparedRequest prepared;
  if (std::optional<ApiError> e =
          prepare_request(request, env_.tokenizer, env_.engine.max_context(), prepared)) {
    reply_error(exchange, handler, *e);
    return;
  }
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    id = next_job_++;
    jobs_[id];
  }
  auto on_end = [this, id] {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.erase(id);
  };
  std::shared_ptr<CompletionJob> job = CompletionJob::start(
      env_, request, std::move(prepared), exchange, arrival,
      std::chrono::duration<double>(ThreadCpuClock::now() - cpu_start).count(), on_end);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = jobs_.find(id); it != jobs_.end()) it->second = job;
  }
  // A job that started while cancel_all() ran was not in its list.
  if (shutting_down_) job->shutdown();
}

void OpenAiService::cancel_all() {
  shutting_down_ = true;
  std::vector<std::shared_ptr<CompletionJob>> live;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [id, weak] : jobs_)
      if (std::shared_ptr<CompletionJob> job = weak.lock()) live.push_back(job);
  }
  for (const std::shared_ptr<CompletionJob>& job : live) job->shutdown();
}

size_t OpenAiService::active_requests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.size();
}

}  // namespace v4::router
