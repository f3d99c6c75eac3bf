// `v4serve router --workers host:port,...`: the OpenAI-compatible HTTP front over gRPC workers
// (docs/design.md, processes). It reads only the GGUF's metadata (tokenizer, model name): the
// router renders, tokenizes, detokenizes and parses; workers see token ids.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "apps/command.h"
#include "apps/http_front.h"
#include "apps/log_setup.h"
#include "apps/serve_model.h"
#include "model/gguf/gguf_reader.h"
#include "model/text/tokenizer.h"
#include "router/grpc/grpc_engine_client.h"
#include "router/grpc/link_security.h"
#include "router/grpc/router_grpc_metrics.h"

namespace v4::apps {
namespace {

struct RouterFlags {
  HttpFrontFlags http;
  std::string model;
  std::string workers;
  std::string routing = "affinity";
  uint32_t batch_window_us = 0;
  uint32_t batch_max = 64;
  uint32_t health_interval_ms = 500;
  uint32_t rpc_timeout_ms = 2000;
  router_grpc::WorkerTlsClientFiles tls;
  std::string auth_token_file;
  std::string workers_dns;
  uint32_t workers_dns_interval_s = 10;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

int run_router(const RouterFlags& f) {
  if (Status s = configure_logging(f.http.log_format, f.http.log_level); !s) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 2;
  }
  const sigset_t signals = block_stop_signals();
  Result<router_grpc::RoutingMode> mode = router_grpc::routing_mode_from_name(f.routing);
  const std::vector<std::string> workers = split_list(f.workers);
  if (!mode || (workers.empty() && f.workers_dns.empty())) {
    spdlog::error("{}", !mode ? mode.message() : "name workers with --workers or --workers-dns");
    return 2;
  }
  std::optional<router_grpc::DnsDiscoveryOptions> dns;
  if (!f.workers_dns.empty()) {
    Result<router_grpc::DnsDiscoveryOptions> parsed = router_grpc::parse_dns_target(f.workers_dns);
    if (!parsed) {
      spdlog::error("{}", parsed.message());
      return 2;
    }
    dns = std::move(*parsed);
    dns->interval = std::chrono::seconds(f.workers_dns_interval_s);
  }
  Result<router_grpc::LinkSecurity> security =
      router_grpc::load_link_security(f.tls, f.auth_token_file);
  if (!security) {
    spdlog::error("{}", security.message());
    return 2;
  }
  if (!security->auth_token.empty() && !security->tls)
    spdlog::warn(
        "--workers-auth-token-file without --workers-tls-ca: the token travels in clear "
        "(acceptable on loopback only)");
  Result<std::string> model_path = model_path_or_default(f.model);
  if (!model_path) {
    spdlog::error("{}", model_path.message());
    return 1;
  }
  const std::string& path = *model_path;
  Result<GgufFile> file = GgufFile::open(path);
  if (!file) {
    spdlog::error("{}", file.message());
    return 1;
  }
  Result<Tokenizer> tokenizer = Tokenizer::from_gguf(*file);
  if (!tokenizer) {
    spdlog::error("{}: {}", path, tokenizer.message());
    return 1;
  }
  std::string model_name = std::filesystem::path(path).stem().string();
  if (Result<std::string> name = file->get_string("general.name"); name && !name->empty())
    model_name = *name;

  const router::ServiceOptions service = service_options(f.http, model_name, "fp_router");
  router::ServerMetrics metrics(service.model_name, f.http.metrics_expert_detail);
  router_grpc::GrpcClientOptions options;
  options.workers = workers;
  options.dns = dns;
  options.link.security = std::move(*security);
  options.metrics = std::make_shared<router_grpc::RouterGrpcMetrics>(metrics.registry());
  options.routing.mode = *mode;
  options.link.router_id = "router-" + std::to_string(::getpid());
  options.link.batch_window = std::chrono::microseconds(f.batch_window_us);
  options.link.batch_max = f.batch_max;
  options.link.rpc_timeout = std::chrono::milliseconds(f.rpc_timeout_ms);
  options.health_interval = std::chrono::milliseconds(f.health_interval_ms);
  auto client = std::make_unique<router_grpc::GrpcEngineClient>(options);
  client->start();
  spdlog::info("{} of {} workers connected", client->usable_workers(),
               client->worker_addresses().size());

  return serve_http(f.http, service, *tokenizer, *client, metrics, signals, [&] {
    const router_grpc::GrpcClientCounters c = client->counters();
    spdlog::info(
        "stopped: {} submissions in {} Submit messages, {} continuations after lost "
        "workers, {} routed by prefix affinity",
        c.submitted, c.submit_messages, c.resubmitted, c.affinity_hits);
    client.reset();
  });
}

CommandRegistration router_command(
    "router", "OpenAI-compatible HTTP router over gRPC workers", [](CLI::App& sub) {
      auto f = std::make_shared<RouterFlags>();
      sub.add_option("--workers", f->workers, "worker addresses, host:port,host:port,...");
      sub.add_option("--workers-dns", f->workers_dns,
                     "NAME:PORT whose A/AAAA records are workers (re-resolved; e.g. a "
                     "Kubernetes headless Service)");
      sub.add_option("--workers-dns-interval-s", f->workers_dns_interval_s,
                     "how often --workers-dns is resolved again")
          ->capture_default_str()
          ->check(CLI::Range(1u, 86400u));
      sub.add_option("--workers-tls-ca", f->tls.ca,
                     "PEM CA bundle: dial workers over TLS, trusting certificates it signed");
      sub.add_option("--workers-tls-cert", f->tls.certificate,
                     "PEM client certificate for workers that require one (mutual TLS)");
      sub.add_option("--workers-tls-key", f->tls.key, "PEM private key of --workers-tls-cert");
      sub.add_option("--workers-tls-server-name", f->tls.server_name,
                     "name the workers' certificates must carry (default: the address's host)");
      sub.add_option("--workers-auth-token-file", f->auth_token_file,
                     "file holding the token the workers require (sent as authorization: "
                     "Bearer on every call)");
      sub.add_option("--model", f->model,
                     "the workers' GGUF, read for its tokenizer and name only (default: the "
                     "tiny synthetic model)");
      add_http_front_flags(sub, f->http);
      sub.add_option("--routing", f->routing,
                     "affinity (prefix affinity bounded by load), p2c "
                     "(power of two choices) or round-robin")
          ->capture_default_str();
      sub.add_option("--batch-window-us", f->batch_window_us,
                     "gather submissions to one worker for this long into one message")
          ->capture_default_str()
          ->check(CLI::Range(0u, 1000000u));
      sub.add_option("--batch-max", f->batch_max, "submissions per message at most")
          ->capture_default_str()
          ->check(CLI::Range(1u, 4096u));
      sub.add_option("--health-interval-ms", f->health_interval_ms,
                     "how often each worker's Health and Stats are asked")
          ->capture_default_str()
          ->check(CLI::Range(10u, 600000u));
      sub.add_option("--rpc-timeout-ms", f->rpc_timeout_ms,
                     "deadline of Health and Stats (a worker missing it is ejected)")
          ->capture_default_str()
          ->check(CLI::Range(10u, 600000u));
      return [f] { return run_router(*f); };
    });

}  // namespace
}  // namespace v4::apps
