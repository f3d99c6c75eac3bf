// `v4serve serve [--model FILE]`: the OpenAI-compatible router and a CPU engine in one process
// (docs/design.md, single-node deployment). Without --model it serves the tiny synthetic model,
// generated once into the cache directory. SIGINT / SIGTERM drain gracefully: no new requests,
// in-flight ones finish (or are cancelled at --drain-timeout, each with a final event), exit 0.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "apps/command.h"
#include "apps/device_setup.h"
#include "apps/engine_flags.h"
#include "apps/http_front.h"
#include "apps/local_engine_client.h"
#include "apps/log_setup.h"
#include "apps/serve_model.h"
#include "apps/startup_phases.h"
#include "apps/token_vocabulary_source.h"
#include "model/backend/kv_row_codec.h"
#include "model/text/tokenizer.h"
#include "router/http/http_server.h"
#include "router/openai/metrics.h"
#include "router/openai/openai_service.h"
#include "worker/engine.h"

namespace v4::apps {
namespace {

struct ServeFlags {
  HttpFrontFlags http;
  std::string model;
  EngineFlags engine;
};

// OpenAI's system_fingerprint: "fp_" and 12 hex digits of FNV-1a over what changes the outputs
// for a given request (the weights file, the KV storage, the context limit, the version).
std::string system_fingerprint(const std::string& model_path, const EngineFlags& f) {
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

int run_serve(const ServeFlags& f) {
  if (Status s = configure_logging(f.http.log_format, f.http.log_level); !s) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 2;
  }
  const sigset_t signals = block_stop_signals();
  StartupPhases startup;

  Result<std::string> model_path = model_path_or_default(f.model);
  if (!model_path) {
    spdlog::error("{}", model_path.message());
    return 1;
  }
  const std::string& path = *model_path;
  Result<std::unique_ptr<V4Model>> model = load_model_with_progress(path, f.engine.mtp);
  if (!model) {
    spdlog::error("{}", model.message());
    return 1;
  }
  startup.end("model");
  Result<Tokenizer> tokenizer = Tokenizer::from_gguf((*model)->file);
  if (!tokenizer) {
    spdlog::error("{}: {}", path, tokenizer.message());
    return 1;
  }
  Result<EngineOptions> options = engine_options(f.engine, **model);
  if (!options) {
    spdlog::error("{}", options.message());
    return 2;
  }
  options->vocabulary = token_vocabulary(*tokenizer);
  startup.end("tokenizer");
  const router::ServiceOptions options_for_service = service_options(
      f.http, default_model_name(**model, path), system_fingerprint(path, f.engine));
  router::ServerMetrics metrics(options_for_service.model_name, f.http.metrics_expert_detail);
  Result<std::optional<ExpertTiers>> tiers =
      expert_tiers(f.engine.expert_tiers, f.engine.hot_coverage, (*model)->weights.config);
  if (!tiers) {
    spdlog::error("{}", tiers.message());
    return 2;
  }
  if (Status s =
          size_kv_for_device(f.engine, (*model)->weights, *options, 1, *tiers ? &**tiers : nullptr);
      !s) {
    spdlog::error("{}", s.message());
    return 1;
  }
  if (Result<uint32_t> pages = EngineCore::pages_for_budget((*model)->weights.config, *options)) {
    metrics.set_cache_config({{"block_size", std::to_string(options->page_tokens)},
                              {"cache_dtype", f.engine.kv_storage},
                              {"enable_prefix_caching", options->prefix_caching ? "True" : "False"},
                              {"num_gpu_blocks", std::to_string(*pages)},
                              {"kv_memory_mib", std::to_string(options->kv_memory_bytes >> 20)}});
  }
  Result<PreparedDevice> device = prepare_device(
      f.engine.device, f.engine.threads, (*model)->weights,
      engine_reserve((*model)->weights, options->kv_memory_bytes, options->storage,
                     options->max_batch_tokens, options->max_seqs, options->max_context),
      UploadProgressTo::kLog, {}, *tiers ? &**tiers : nullptr);
  if (!device) {
    spdlog::error("{}", device.message());
    return 1;
  }
  startup.end("device");
  auto engine = std::make_unique<Engine>(*device->weights, *options, std::move(device->backend),
                                         EngineGroup{}, std::move(device->experts));
  auto client = std::make_unique<LocalEngineClient>(*engine);
  startup.end("engine");
  std::printf("v4serve: %s\n", startup.summary().c_str());
  return serve_http(f.http, options_for_service, *tokenizer, *client, metrics, signals, [&] {
    client.reset();
    engine.reset();
    spdlog::info("stopped");
  });
}

CommandRegistration serve_command(
    "serve", "OpenAI-compatible HTTP server with an in-process CPU engine", [](CLI::App& sub) {
      auto f = std::make_shared<ServeFlags>();
      sub.add_option("--model", f->model,
                     "model GGUF (first part of a split set); default: the tiny synthetic model");
      add_http_front_flags(sub, f->http);
      add_engine_flags(sub, f->engine);
      return [f] { return run_serve(*f); };
    });

}  // namespace
}  // namespace v4::apps
