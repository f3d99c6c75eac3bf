// The OpenAI-compatible HTTP front both `serve` (in-process engine) and `router` (gRPC workers)
// run: its flags, and the loop that serves until SIGINT / SIGTERM and then drains.
#pragma once

#include <csignal>
#include <cstdint>
#include <functional>
#include <string>

#include "model/text/tokenizer.h"
#include "router/openai/engine_client.h"
#include "router/openai/metrics.h"
#include "router/openai/openai_service.h"

namespace CLI {
class App;
}

namespace v4::apps {

struct HttpFrontFlags {
  std::string served_model_name;
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  std::string api_key;
  bool cors = false;
  uint32_t max_queue = 256;
  unsigned http_threads = 2;
  unsigned request_threads = 2;
  uint64_t body_limit_mib = 8;
  double drain_timeout = 30.0;
  double responses_store_mib = 64.0;
  double tool_call_replay_mib = 64.0;
  bool metrics_expert_detail = false;
  std::string log_format = "text";
  std::string log_level = "info";
};

void add_http_front_flags(CLI::App& sub, HttpFrontFlags& f);

// Blocks SIGINT and SIGTERM in every thread started from now on (call first in a main).
sigset_t block_stop_signals();
// Blocks until SIGINT or SIGTERM; returns it.
int wait_for_signal(const sigset_t& signals);

// ServiceOptions from the flags (API key from V4SERVE_API_KEY when the flag is empty).
router::ServiceOptions service_options(const HttpFrontFlags& f, std::string model_name,
                                       std::string system_fingerprint);

// Serves the OpenAI API over `engine` until SIGINT / SIGTERM, then drains: no new requests,
// in-flight ones finish or are ended at --drain-timeout. Prints the bound address on stdout.
// Returns the exit code. `stop_engine` is called before the service goes away and must stop
// every engine thread that may still deliver events (destroy the engine and its client).
int serve_http(const HttpFrontFlags& f, const router::ServiceOptions& options,
               const Tokenizer& tokenizer, router::EngineClient& engine,
               router::ServerMetrics& metrics, const sigset_t& signals,
               const std::function<void()>& stop_engine);

}  // namespace v4::apps
