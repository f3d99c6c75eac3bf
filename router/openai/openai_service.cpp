#include "router/openai/openai_service.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "core/thread_cpu_clock.h"

namespace v4::router {

namespace {

// The routes behind the API key: /v1/... and vLLM's /tokenize and /detokenize.
bool is_api_path(const std::string& path) {
  return path.rfind("/v1/", 0) == 0 || path == "/tokenize" || path == "/detokenize";
}

// The key a request carries: OpenAI's SDKs send 'Authorization: Bearer KEY', Anthropic's
// 'x-api-key: KEY'.
std::optional<std::string> presented_key(const HttpRequest& request) {
  const std::string header = request.header("authorization");
  const std::string prefix = "Bearer ";
  if (header.size() >= prefix.size() && header.compare(0, prefix.size(), prefix) == 0)
    return header.substr(prefix.size());
  if (auto it = request.headers.find("x-api-key"); it != request.headers.end()) return it->second;
  return std::nullopt;
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
                             EngineClient& engine, ServerMetrics& metrics,
                             std::vector<std::unique_ptr<ApiFront>> fronts)
    : options_(std::move(options)),
      replay_store_(options_.tool_call_replay_entries, options_.tool_call_replay_bytes),
      env_{tokenizer, engine, metrics, options_.model_name, options_.system_fingerprint},
      fronts_(std::move(fronts)),
      request_pool_(options_.request_threads == 0 ? 1 : options_.request_threads) {
  env_.tool_call_replay = &replay_store_;
}

OpenAiService::~OpenAiService() { stop(); }

void OpenAiService::stop() {
  accepting_ = false;
  request_pool_.join();
}

bool OpenAiService::authorized(const HttpRequest& request) const {
  if (options_.api_key.empty()) return true;
  const std::optional<std::string> key = presented_key(request);
  return key && constant_time_equal(*key, options_.api_key);
}

const ApiFront& OpenAiService::front_for(std::string_view path) const {
  for (const std::unique_ptr<ApiFront>& front : fronts_)
    if (front->owns(path)) return *front;
  return openai_front_;
}

// Handler label for metrics: known routes by name, everything else as "other" so that
// arbitrary paths cannot grow the series without bound.
std::string OpenAiService::handler_label(const std::string& path) const {
  for (const char* known : {"/v1/models", "/health", "/metrics"})
    if (path == known) return path;
  if (front_for(path).route(path)) return path;
  return "other";
}

void OpenAiService::reply_json(const std::shared_ptr<HttpExchange>& exchange,
                               const std::string& handler, int status, std::string body) {
  exchange->respond(status, "application/json", std::move(body));
  env_.metrics.http_request(handler, status);
}

void OpenAiService::reply_error(const std::shared_ptr<HttpExchange>& exchange,
                                const std::string& handler, const ApiFront& front,
                                const ApiError& error, HttpHeaders headers) {
  ErrorReply reply = front.error_reply(error);
  exchange->respond(reply.status, "application/json", std::move(reply.body), std::move(headers));
  env_.metrics.http_request(handler, reply.status);
}

void OpenAiService::handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange) {
  const Clock::time_point arrival = Clock::now();
  const std::string handler = handler_label(request.path);
  const ApiFront& front = front_for(request.path);
  try {
    if (request.method == "OPTIONS" && options_.cors) {
      exchange->respond(
          204, "text/plain", "",
          {{"Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"},
           {"Access-Control-Allow-Headers",
            "Authorization, Content-Type, x-api-key, anthropic-version, anthropic-beta"},
           {"Access-Control-Max-Age", "600"}});
      return;
    }
    if (is_api_path(request.path) && !authorized(request)) {
      reply_error(exchange, handler, front,
                  unauthorized("Incorrect API key provided. Pass it as 'Authorization: Bearer "
                               "KEY' or 'x-api-key: KEY'."));
      return;
    }
    const bool get = request.method == "GET", post = request.method == "POST";
    const std::optional<RouteKind> kind = front.route(request.path);
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
    } else if (kind && post) {
      start_serve(front, *kind, std::move(request), exchange, arrival);
    } else if (std::optional<DirectReply> reply = front.answer(request.method, request.path)) {
      reply_json(exchange, reply->handler, reply->status, std::move(reply->body));
    } else if (handler != "other") {
      ApiError e =
          invalid_request("method " + request.method + " is not allowed on " + request.path);
      e.status = 405;
      reply_error(exchange, handler, front, e);
    } else {
      reply_error(exchange, handler, front, not_found("no route for " + request.path));
    }
  } catch (const std::exception& e) {
    spdlog::error("{} {}: {}", request.method, request.path, e.what());
    reply_error(exchange, handler, front, server_error(std::string("internal error: ") + e.what()));
  }
}

void OpenAiService::start_serve(const ApiFront& front, RouteKind kind, HttpRequest request,
                                std::shared_ptr<HttpExchange> exchange, Clock::time_point arrival) {
  boost::asio::post(request_pool_, [this, &front, kind, request = std::move(request),
                                    exchange = std::move(exchange), arrival] {
    try {
      serve(front, kind, request, exchange, arrival);
    } catch (const std::exception& e) {
      spdlog::error("{} {}: {}", request.method, request.path, e.what());
      reply_error(exchange, handler_label(request.path), front,
                  server_error(std::string("internal error: ") + e.what()));
    }
  });
}

// Parse, check the model and the queue, render and tokenize; then either answer from the
// prompt alone or start the job.
void OpenAiService::serve(const ApiFront& front, RouteKind kind, const HttpRequest& http,
                          const std::shared_ptr<HttpExchange>& exchange,
                          Clock::time_point arrival) {
  const ThreadCpuClock::time_point cpu_start = ThreadCpuClock::now();
  const std::string handler = handler_label(http.path);
  if (!accepting_) {
    reply_error(exchange, handler, front, server_error("the server is shutting down", 503));
    return;
  }
  if (kind == RouteKind::kDirect) {
    std::string reply;
    if (std::optional<ApiError> e = front.direct_reply(http.path, http.body, reply)) {
      reply_error(exchange, handler, front, *e);
    } else {
      reply_json(exchange, handler, 200, std::move(reply));
    }
    return;
  }
  OpenAiRequest request;
  if (std::optional<ApiError> e =
          front.parse(http.path, http.body, env_.tokenizer.vocab_size(), request)) {
    reply_error(exchange, handler, front, *e);
    return;
  }
  if (request.model != options_.model_name) {
    reply_error(exchange, handler, front,
                not_found("The model `" + request.model + "` does not exist.", "model_not_found"));
    return;
  }
  if (kind == RouteKind::kGenerate && !env_.engine.ready()) {
    reply_error(exchange, handler, front,
                server_error("no worker is available to serve requests", 503),
                {{"Retry-After", "1"}});
    return;
  }
  if (kind == RouteKind::kGenerate && env_.waiting.load() >= options_.max_queue) {
    reply_error(exchange, handler, front,
                overloaded("too many requests are waiting (" + std::to_string(options_.max_queue) +
                           "); retry later"),
                {{"Retry-After", "1"}});
    return;
  }
  // Calls this router generated render as the model wrote them (spec §5.8), so the prompt
  // extends the previous turn's tokens and its KV pages are found in the prefix cache.
  if (request.endpoint == Endpoint::kChat) {
    if (const size_t replayed = replay_store_.fill(request.chat)) {
      env_.metrics.tool_calls_replayed(replayed);
    }
  }
  PreparedRequest prepared;
  if (std::optional<ApiError> e =
          prepare_request(request, env_.tokenizer, env_.engine.max_context(), prepared)) {
    reply_error(exchange, handler, front, *e);
    return;
  }
  if (kind == RouteKind::kPromptTokens) {
    reply_json(exchange, handler, 200, front.prompt_reply(prepared, env_.engine.max_context()));
    return;
  }
  start_job(front, http, request, std::move(prepared), exchange, arrival,
            std::chrono::duration<double>(ThreadCpuClock::now() - cpu_start).count());
}

void OpenAiService::start_job(const ApiFront& front, const HttpRequest& http,
                              const OpenAiRequest& request, PreparedRequest prepared,
                              const std::shared_ptr<HttpExchange>& exchange,
                              Clock::time_point arrival, double setup_seconds) {
  const ThreadCpuClock::time_point cpu_start = ThreadCpuClock::now();
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
  JobSetup setup = front.job_setup(http.path, request, prepared, env_);
  setup_seconds += std::chrono::duration<double>(ThreadCpuClock::now() - cpu_start).count();
  std::shared_ptr<CompletionJob> job =
      CompletionJob::start(env_, request, std::move(prepared), std::move(setup), exchange, arrival,
                           setup_seconds, on_end);
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
