#include "apps/http_front.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "router/anthropic/messages_front.h"
#include "router/http/http_server.h"
#include "router/openai/tokenize_front.h"
#include "router/responses/response_store.h"
#include "router/responses/responses_front.h"

namespace v4::apps {

void add_http_front_flags(CLI::App& sub, HttpFrontFlags& f) {
  sub.add_option("--served-model-name", f.served_model_name,
                 "model id clients send (default: general.name of the file)");
  sub.add_option("--host", f.host, "address to listen on")->capture_default_str();
  sub.add_option("--port", f.port, "port (0: any free port)")->capture_default_str();
  sub.add_option("--api-key", f.api_key,
                 "require 'Authorization: Bearer KEY' or 'x-api-key: KEY' on /v1, /tokenize and "
                 "/detokenize (or set "
                 "V4SERVE_API_KEY)");
  sub.add_flag("--cors", f.cors, "allow cross-origin requests from any origin");
  sub.add_option("--max-queue", f.max_queue,
                 "requests waiting for their first token before new ones get 429")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000000u));
  sub.add_option("--http-threads", f.http_threads, "HTTP threads")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));
  sub.add_option("--request-threads", f.request_threads,
                 "threads that parse, render and tokenize requests (off the HTTP threads)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));
  sub.add_option("--body-limit", f.body_limit_mib, "request body limit in MiB")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1024}));
  sub.add_option("--drain-timeout", f.drain_timeout,
                 "seconds in-flight requests get to finish on SIGINT/SIGTERM")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  sub.add_option("--responses-store-mib", f.responses_store_mib,
                 "memory for stored /v1/responses (previous_response_id); the least recently "
                 "used go first, 0 stores none")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1048576.0));
  sub.add_option("--tool-call-replay-mib", f.tool_call_replay_mib,
                 "memory for the exact DSML of returned tool calls, so calls sent back render "
                 "as generated; the least recently used go first, 0 keeps none")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1048576.0));
  sub.add_flag("--metrics-expert-detail", f.metrics_expert_detail,
               "export one counter per (layer, expert) instead of the per-layer summary "
               "(about 11k series on the real model)");
  sub.add_option("--log-format", f.log_format, "text or json")->capture_default_str();
  sub.add_option("--log-level", f.log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
}

sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return signals;
}

// The signals were blocked in every thread before any started.
int wait_for_signal(const sigset_t& signals) {
  int signal = 0;
  sigwait(&signals, &signal);
  return signal;
}

router::ServiceOptions service_options(const HttpFrontFlags& f, std::string model_name,
                                       std::string system_fingerprint) {
  router::ServiceOptions o;
  o.model_name = f.served_model_name.empty() ? std::move(model_name) : f.served_model_name;
  o.api_key = f.api_key;
  if (o.api_key.empty())
    if (const char* key = std::getenv("V4SERVE_API_KEY")) o.api_key = key;
  o.cors = f.cors;
  o.max_queue = f.max_queue;
  o.request_threads = f.request_threads;
  o.tool_call_replay_bytes = static_cast<size_t>(f.tool_call_replay_mib * 1024 * 1024);
  o.created = static_cast<int64_t>(std::time(nullptr));
  o.system_fingerprint = std::move(system_fingerprint);
  return o;
}

int serve_http(const HttpFrontFlags& f, const router::ServiceOptions& options,
               const Tokenizer& tokenizer, router::EngineClient& engine,
               router::ServerMetrics& metrics, const sigset_t& signals,
               const std::function<void()>& stop_engine) {
  // The Anthropic Messages and OpenAI Responses APIs share the service's machinery.
  std::vector<std::unique_ptr<router::ApiFront>> fronts;
  fronts.push_back(std::make_unique<router::MessagesFront>());
  fronts.push_back(std::make_unique<router::TokenizeFront>(options.model_name, tokenizer));
  fronts.push_back(std::make_unique<router::ResponsesFront>(std::make_shared<router::ResponseStore>(
      static_cast<size_t>(f.responses_store_mib * 1024 * 1024))));
  router::OpenAiService service(options, tokenizer, engine, metrics, std::move(fronts));
  router::HttpServerOptions http;
  http.host = f.host;
  http.port = f.port;
  http.threads = f.http_threads;
  http.body_limit = f.body_limit_mib << 20;
  if (f.cors) http.extra_headers.push_back({"Access-Control-Allow-Origin", "*"});
  router::HttpServer server(http, [&service](router::HttpRequest request,
                                             std::shared_ptr<router::HttpExchange> exchange) {
    service.handle(std::move(request), std::move(exchange));
  });
  if (Status s = server.start(); !s) {
    spdlog::error("{}", s.message());
    service.stop();
    stop_engine();
    return 1;
  }
  spdlog::info("serving model \"{}\"{}", options.model_name,
               options.api_key.empty() ? "" : " (API key required)");
  // The one line on stdout: scripts read the bound port from it (useful with --port 0).
  std::printf("v4serve: listening on http://%s:%u\n", f.host.c_str(), server.port());
  std::fflush(stdout);

  const int signal = wait_for_signal(signals);
  spdlog::info("{} received: draining ({} requests in flight)", strsignal(signal),
               service.active_requests());
  service.stop_accepting();
  const auto deadline = std::chrono::milliseconds(static_cast<int64_t>(f.drain_timeout * 1000));
  // At the deadline the open requests are ended while their connections are still open, so
  // each client gets its final event (or error body) before the server closes.
  const bool drained = server.drain(deadline, [&service] {
    spdlog::warn("drain timeout: cancelling {} requests", service.active_requests());
    service.cancel_all();
  });
  if (!drained) spdlog::info("drain: open requests were cancelled at the deadline");
  server.stop();
  service.stop();
  // The engine goes before the service: its threads may still deliver events to jobs that
  // refer to the service.
  stop_engine();
  return 0;
}

}  // namespace v4::apps
