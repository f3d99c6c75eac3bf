// `v4serve serve [--model FILE]`: the OpenAI- and Anthropic-compatible router and a CPU engine
// in one process (docs/design.md, single-node deployment). Without --model it serves the tiny
// synthetic model, generated once into the cache directory. SIGINT / SIGTERM drain gracefully: no
// new requests, in-flight ones finish (or are cancelled at --drain-timeout, each with a final
// event), exit 0.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "apps/command.h"
#include "apps/local_engine_client.h"
#include "apps/log_setup.h"
#include "apps/serve_model.h"
#include "model/backend/kv_row_codec.h"
#include "model/text/tokenizer.h"
#include "router/anthropic/messages_front.h"
#include "router/http/http_server.h"
#include "router/openai/metrics.h"
#include "router/openai/openai_service.h"
#include "router/responses/responses_front.h"
#include "worker/engine.h"

namespace v4::apps {
namespace {

struct ServeFlags {
  std::string model;
  std::string served_model_name;
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  std::string api_key;
  bool cors = false;
  uint32_t max_queue = 256;
  unsigned http_threads = 2;
  unsigned request_threads = 2;
  unsigned threads = 0;
  uint64_t kv_memory_mib = 0;
  uint32_t ctx = 4096;
  uint32_t max_batch_tokens = 256;
  uint32_t max_seqs = 64;
  std::string kv_storage = "f32";
  bool no_prefix_caching = false;
  uint64_t body_limit_mib = 8;
  double drain_timeout = 30.0;
  double responses_store_mib = 64.0;
  std::string log_format = "text";
  std::string log_level = "info";
};

// Default KV budget: a quarter of the memory the kernel reports available, so the engine
// leaves room for the weights' page cache and the rest of the machine.
uint64_t default_kv_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  uint64_t kib = 0;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return (kib << 10) / 4;
  return uint64_t{1} << 30;
}

std::string default_model_name(const V4Model& model, const std::string& path) {
  if (Result<std::string> name = model.file.get_string("general.name"); name && !name->empty())
    return *name;
  return std::filesystem::path(path).stem().string();
}

Result<EngineOptions> engine_options(const ServeFlags& f, const V4Config& config) {
  Result<KvStorage> storage = kv_storage_from_name(f.kv_storage);
  if (!storage) return storage.status();
  EngineOptions o;
  o.storage = *storage;
  o.kv_memory_bytes = f.kv_memory_mib ? f.kv_memory_mib << 20 : default_kv_bytes();
  o.max_context = f.ctx;
  o.max_batch_tokens = f.max_batch_tokens;
  o.max_seqs = f.max_seqs;
  o.prefix_caching = !f.no_prefix_caching;
  Result<uint32_t> pages = EngineCore::pages_for_budget(config, o);
  if (!pages) return pages.status();
  spdlog::info("KV cache: {:.0f} MiB budget, {} pages of {} tokens, {} storage, prefix caching {}",
               o.kv_memory_bytes / 1048576.0, *pages, o.page_tokens, f.kv_storage,
               o.prefix_caching ? "on" : "off");
  return o;
}

// OpenAI's system_fingerprint: "fp_" and 12 hex digits of FNV-1a over what changes the outputs
// for a given request (the weights file, the KV storage, the context limit, the version).
std::string system_fingerprint(const std::string& model_path, const ServeFlags& f) {
  std::error_code size_error, path_error;
  const uintmax_t size = std::filesystem::file_size(model_path, size_error);
  const std::string key = std::filesystem::absolute(model_path, path_error).string() + "|" +
                          std::to_string(size_error ? 0 : size) + "|" + f.kv_storage + "|" +
                          std::to_string(f.ctx) + "|" + __DATE__;
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : key) hash = (hash ^ c) * 1099511628211ull;
  char text[24];
  std::snprintf(text, sizeof text, "fp_%012llx",
                static_cast<unsigned long long>(hash & 0xffffffffffffull));
  return text;
}

// Blocks until SIGINT or SIGTERM; the signals were blocked in every thread before any started.
int wait_for_signal(const sigset_t& signals) {
  int signal = 0;
  sigwait(&signals, &signal);
  return signal;
}

int run_serve(const ServeFlags& f) {
  if (Status s = configure_logging(f.log_format, f.log_level); !s) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::string path = f.model;
  if (path.empty()) {
    Result<std::string> generated = default_model_path();
    if (!generated) {
      spdlog::error("{}", generated.message());
      return 1;
    }
    path = *generated;
  }
  Result<std::unique_ptr<V4Model>> model = load_model_with_progress(path);
  if (!model) {
    spdlog::error("{}", model.message());
    return 1;
  }
  Result<Tokenizer> tokenizer = Tokenizer::from_gguf((*model)->file);
  if (!tokenizer) {
    spdlog::error("{}: {}", path, tokenizer.message());
    return 1;
  }
  Result<EngineOptions> options = engine_options(f, (*model)->weights.config);
  if (!options) {
    spdlog::error("{}", options.message());
    return 2;
  }
  router::ServiceOptions service_options;
  service_options.model_name =
      f.served_model_name.empty() ? default_model_name(**model, path) : f.served_model_name;
  service_options.api_key = f.api_key;
  if (service_options.api_key.empty())
    if (const char* key = std::getenv("V4SERVE_API_KEY")) service_options.api_key = key;
  service_options.cors = f.cors;
  service_options.max_queue = f.max_queue;
  service_options.request_threads = f.request_threads;
  service_options.created = static_cast<int64_t>(std::time(nullptr));
  service_options.system_fingerprint = system_fingerprint(path, f);

  router::ServerMetrics metrics(service_options.model_name);
  if (Result<uint32_t> pages = EngineCore::pages_for_budget((*model)->weights.config, *options)) {
    metrics.set_cache_config({{"block_size", std::to_string(options->page_tokens)},
                              {"cache_dtype", f.kv_storage},
                              {"enable_prefix_caching", options->prefix_caching ? "True" : "False"},
                              {"num_gpu_blocks", std::to_string(*pages)},
                              {"kv_memory_mib", std::to_string(options->kv_memory_bytes >> 20)}});
  }
  auto engine = std::make_unique<Engine>((*model)->weights, *options, f.threads);
  auto client = std::make_unique<LocalEngineClient>(*engine);
  std::vector<std::unique_ptr<router::ApiFront>> fronts;
  fronts.push_back(std::make_unique<router::MessagesFront>());
  fronts.push_back(std::make_unique<router::ResponsesFront>(std::make_shared<router::ResponseStore>(
      static_cast<size_t>(f.responses_store_mib * 1024 * 1024))));
  router::OpenAiService service(service_options, *tokenizer, *client, metrics, std::move(fronts));

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
    return 1;
  }
  spdlog::info("serving model \"{}\"{}", service_options.model_name,
               service_options.api_key.empty() ? "" : " (API key required)");
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
  // The engine goes first: its thread may still deliver events to jobs the service owns.
  client.reset();
  engine.reset();
  spdlog::info("stopped");
  return 0;
}

CommandRegistration registration(
    "serve", "OpenAI- and Anthropic-compatible HTTP server with an in-process CPU engine",
    [](CLI::App& sub) {
      auto f = std::make_shared<ServeFlags>();
      sub.add_option("--model", f->model,
                     "model GGUF (first part of a split set); default: the tiny synthetic model");
      sub.add_option("--served-model-name", f->served_model_name,
                     "model id clients send (default: general.name of the file)");
      sub.add_option("--host", f->host, "address to listen on")->capture_default_str();
      sub.add_option("--port", f->port, "port (0: any free port)")->capture_default_str();
      sub.add_option("--api-key", f->api_key,
                     "require 'Authorization: Bearer KEY' or 'x-api-key: KEY' on /v1 (or set "
                     "V4SERVE_API_KEY)");
      sub.add_flag("--cors", f->cors, "allow cross-origin requests from any origin");
      sub.add_option("--max-queue", f->max_queue,
                     "requests waiting for their first token before new ones get 429")
          ->capture_default_str()
          ->check(CLI::Range(1u, 1000000u));
      sub.add_option("--http-threads", f->http_threads, "HTTP threads")
          ->capture_default_str()
          ->check(CLI::Range(1u, 256u));
      sub.add_option("--request-threads", f->request_threads,
                     "threads that parse, render and tokenize requests (off the HTTP threads)")
          ->capture_default_str()
          ->check(CLI::Range(1u, 256u));
      sub.add_option("--threads", f->threads, "engine threads (default: one per core)");
      sub.add_option("--kv-memory", f->kv_memory_mib,
                     "KV cache budget in MiB (default: a quarter of available memory)");
      sub.add_option("--ctx", f->ctx, "per-request context limit (prompt + output)")
          ->capture_default_str()
          ->check(CLI::Range(1u, 1u << 20));
      sub.add_option("--max-batch-tokens", f->max_batch_tokens, "tokens per engine step")
          ->capture_default_str()
          ->check(CLI::Range(1u, 1u << 16));
      sub.add_option("--max-seqs", f->max_seqs, "sequences per engine step")
          ->capture_default_str()
          ->check(CLI::Range(1u, 4096u));
      sub.add_option("--kv-storage", f->kv_storage, "f32, f16 or fp8")->capture_default_str();
      sub.add_flag("--no-prefix-caching", f->no_prefix_caching,
                   "do not share KV pages between requests with equal prompt prefixes");
      sub.add_option("--body-limit", f->body_limit_mib, "request body limit in MiB")
          ->capture_default_str()
          ->check(CLI::Range(uint64_t{1}, uint64_t{1024}));
      sub.add_option("--drain-timeout", f->drain_timeout,
                     "seconds in-flight requests get to finish on SIGINT/SIGTERM")
          ->capture_default_str()
          ->check(CLI::Range(0.0, 3600.0));
      sub.add_option("--responses-store-mib", f->responses_store_mib,
                     "memory for stored /v1/responses (previous_response_id); the least "
                     "recently used go first, 0 stores none")
          ->capture_default_str()
          ->check(CLI::Range(0.0, 1048576.0));
      sub.add_option("--log-format", f->log_format, "text or json")->capture_default_str();
      sub.add_option("--log-level", f->log_level, "trace, debug, info, warn, error")
          ->capture_default_str();
      return [f] { return run_serve(*f); };
    });

}  // namespace
}  // namespace v4::apps
