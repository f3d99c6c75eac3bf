// `v4serve worker --model F --listen ADDR`: one engine (CPU or a device) behind the gRPC Worker
// service (proto/worker.proto), for `v4serve router` to route to (docs/design.md, processes).
// SIGTERM / SIGINT drain: Health says DRAINING, new submissions are refused (the router moves
// them), running requests finish within --drain-grace, then the process exits 0.
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

#include "apps/command.h"
#include "apps/device_setup.h"
#include "apps/engine_flags.h"
#include "apps/group_device.h"
#include "apps/http_front.h"
#include "apps/log_setup.h"
#include "apps/serve_model.h"
#include "apps/startup_phases.h"
#include "apps/token_vocabulary_source.h"
#include "core/tls_files.h"
#include "worker/engine.h"
#include "worker/ep/worker_group.h"
#include "worker/grpc/server_credentials.h"
#include "worker/grpc/worker_service.h"

namespace v4::apps {
namespace {

struct WorkerFlags {
  std::string model;
  std::string listen = "127.0.0.1:50051";
  EngineFlags engine;
  double drain_grace = 30.0;
  std::string log_format = "text";
  std::string log_level = "info";
  worker_grpc::WorkerTlsFiles tls;
  std::string auth_token_file;
  // Expert parallelism: one rank of a worker group (empty name: a worker of its own).
  WorkerGroupOptions group;
  double group_timeout_s = 60.0;
};

// Joins the group the flags name (after the weights load, before the serving port opens, so
// that a rank reports ready only once its whole group has met). Null without --group.
Result<std::unique_ptr<WorkerGroup>> join_group(const WorkerFlags& f, Backend& backend,
                                                const V4Config& config, const GroupDevice& device) {
  if (f.group.name.empty()) return std::unique_ptr<WorkerGroup>();
  spdlog::info("group {}: rank {} of {} meeting at {}", f.group.name, f.group.rank, f.group.ranks,
               f.group.leader);
  Result<std::unique_ptr<WorkerGroup>> group = WorkerGroup::join(f.group, backend, config, device);
  if (group) spdlog::info("group {}: all {} ranks connected", f.group.name, f.group.ranks);
  return group;
}

// A broken group cannot recover: leave at once, so that every rank of it reports unhealthy
// together and the router moves the open requests (their streams break) to another worker.
[[noreturn]] void leave_broken_group(const std::string& group, const std::string& why) {
  spdlog::critical("group {} broke: {}; exiting", group, why);
  spdlog::shutdown();
  std::_Exit(3);
}

// The credentials and the token of the flags; false (after one error line) when a file is bad.
bool load_security(const WorkerFlags& f, std::shared_ptr<grpc::ServerCredentials>& credentials,
                   std::string& token) {
  Result<std::shared_ptr<grpc::ServerCredentials>> made = worker_grpc::server_credentials(f.tls);
  if (!made) {
    spdlog::error("{}", made.message());
    return false;
  }
  credentials = std::move(*made);
  if (f.auth_token_file.empty()) return true;
  Result<std::string> read = read_token_file(f.auth_token_file, "--auth-token-file");
  if (!read) {
    spdlog::error("{}", read.message());
    return false;
  }
  token = std::move(*read);
  if (!f.tls.enabled())
    spdlog::warn(
        "--auth-token-file without --tls-cert: the token travels in clear (acceptable "
        "on loopback only)");
  return true;
}

int run_worker(WorkerFlags f) {
  if (Status s = configure_logging(f.log_format, f.log_level); !s) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 2;
  }
  const sigset_t signals = block_stop_signals();
  // Bad security files fail before the model loads, which can take minutes.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::string auth_token;
  if (!load_security(f, credentials, auth_token)) return 2;
  // Bad group flags fail before the model loads too.
  if (!f.group.name.empty()) {
    if (Status s = validate(f.group); !s) {
      spdlog::error("{}", s.message());
      return 2;
    }
    if (f.engine.speculative_tokens > 0) {
      spdlog::error(
          "--group: speculative decoding (--speculative-tokens) runs outside groups only");
      return 2;
    }
    if (Status s = check_group_device(f.engine.device); !s) {
      spdlog::error("{}", s.message());
      return 2;
    }
    f.group.timeout = std::chrono::milliseconds(static_cast<int64_t>(f.group_timeout_s * 1000));
  }
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
  Result<EngineOptions> options = engine_options(f.engine, **model);
  if (!options) {
    spdlog::error("{}", options.message());
    return 2;
  }
  if (auto vocabulary = token_vocabulary((*model)->file)) options->vocabulary = *vocabulary;
  options->two_micro_batches = !f.group.name.empty() && f.group.two_micro_batches;
  f.group.max_step_tokens = options->max_batch_tokens;
  startup.end("tokenizer");
  Result<std::optional<ExpertTiers>> tiers =
      expert_tiers(f.engine.expert_tiers, f.engine.hot_coverage, (*model)->weights.config);
  if (!tiers || (*tiers && !f.group.name.empty())) {
    spdlog::error("{}", !tiers ? tiers.message()
                               : "--expert-tiers is for a worker of its own: in a group each rank "
                                 "holds only its share of the experts");
    return 2;
  }
  // A device rank of a group uploads only its own experts.
  Result<GroupDeviceSetup> group_device =
      f.group.name.empty() ? Result<GroupDeviceSetup>(GroupDeviceSetup{})
                           : group_device_setup(f.group, f.engine.device, (*model)->weights.config);
  if (!group_device) {
    spdlog::error("{}", group_device.message());
    return 2;
  }
  if (Status s =
          size_kv_for_device(f.engine, (*model)->weights, *options,
                             f.group.name.empty() ? 1 : f.group.ranks, *tiers ? &**tiers : nullptr,
                             group_device->device.held_only ? &group_device->share : nullptr);
      !s) {
    spdlog::error("{}", s.message());
    return 1;
  }
  Result<PreparedDevice> device =
      prepare_device(f.engine.device, f.engine.threads, (*model)->weights,
                     engine_reserve((*model)->weights, options->kv_memory_bytes, options->storage,
                                    options->max_batch_tokens, options->max_seqs,
                                    options->max_context, f.group.name.empty() ? 1 : f.group.ranks),
                     UploadProgressTo::kLog, {}, *tiers ? &**tiers : nullptr,
                     group_device->device.held_only ? &group_device->share : nullptr);
  if (!device) {
    spdlog::error("{}", device.message());
    return 1;
  }
  startup.end("device");

  Result<std::unique_ptr<WorkerGroup>> group =
      join_group(f, *device->backend, (*model)->weights.config, group_device->device);
  if (!group) {
    spdlog::error("{}", group.message());
    return 1;
  }
  EngineGroup engine_group;
  if (*group) {
    engine_group.group = std::move(*group);
    engine_group.on_failure = [name = f.group.name](const std::string& why) {
      leave_broken_group(name, why);
    };
  }
  if (engine_group.group) startup.end("group");
  auto engine = std::make_unique<Engine>(*device->weights, *options, std::move(device->backend),
                                         std::move(engine_group), std::move(device->experts));
  startup.end("engine");
  worker_grpc::WorkerServiceOptions service_options;
  service_options.worker_id = f.listen;
  service_options.model = default_model_name(**model, path);
  service_options.auth_token = auth_token;
  worker_grpc::WorkerService service(*engine, service_options);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(f.listen, credentials, &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    spdlog::error("cannot listen on {}", f.listen);
    return 1;
  }
  const std::string host = f.listen.substr(0, f.listen.rfind(':'));
  // Stdout: where start-up time went, then the bound address, which scripts read the port from
  // (useful with port 0).
  startup.end("grpc");
  std::printf("v4serve: %s\n", startup.summary().c_str());
  std::printf("v4serve: worker listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);

  const int signal = wait_for_signal(signals);
  spdlog::info("{} received: draining ({} requests open)", strsignal(signal),
               service.open_requests());
  service.drain();
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(f.drain_grace * 1000));
  while (service.open_requests() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (service.open_requests() > 0)
    spdlog::warn("drain grace over: {} requests still open are left to the router",
                 service.open_requests());
  // Open streams end now; a router moves what they still carried to other workers.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  engine.reset();
  spdlog::info("stopped");
  return 0;
}

CommandRegistration worker_command(
    "worker", "gRPC worker: one CPU engine for `v4serve router`", [](CLI::App& sub) {
      auto f = std::make_shared<WorkerFlags>();
      sub.add_option("--model", f->model,
                     "model GGUF (first part of a split set); default: the tiny synthetic model");
      sub.add_option("--listen", f->listen, "host:port to listen on (port 0: any free port)")
          ->capture_default_str();
      add_engine_flags(sub, f->engine);
      sub.add_option("--drain-grace", f->drain_grace,
                     "seconds running requests get to finish on SIGTERM/SIGINT")
          ->capture_default_str()
          ->check(CLI::Range(0.0, 3600.0));
      sub.add_option("--tls-cert", f->tls.certificate, "PEM certificate chain: serve TLS");
      sub.add_option("--tls-key", f->tls.key, "PEM private key of --tls-cert");
      sub.add_option("--tls-client-ca", f->tls.client_ca,
                     "PEM CA bundle: require router certificates it signed (mutual TLS)");
      sub.add_option("--auth-token-file", f->auth_token_file,
                     "file holding the token every call must carry (authorization: Bearer)");
      sub.add_option("--group", f->group.name,
                     "expert parallelism: the worker group (one model replica) this rank joins");
      sub.add_option("--rank", f->group.rank, "this worker's rank in --group (0 .. ranks-1)");
      sub.add_option("--ranks", f->group.ranks, "how many ranks --group has");
      sub.add_option("--group-leader", f->group.leader,
                     "host:port of rank 0's rendezvous (rank 0 listens there)");
      sub.add_option("--group-listen", f->group.leader_listen,
                     "rank 0: host:port to listen on for the rendezvous (default --group-leader)");
      sub.add_option("--group-host", f->group.host,
                     "this rank's address the other ranks connect to")
          ->capture_default_str();
      sub.add_option("--group-timeout-s", f->group_timeout_s,
                     "seconds the rendezvous and every collective may wait for a peer before "
                     "the group counts as broken")
          ->capture_default_str()
          ->check(CLI::Range(0.1, 3600.0));
      sub.add_option("--expert-stats", f->group.expert_stats,
                     "balanced expert placement from this trace's selection counts (a "
                     "/metrics dump served with --metrics-expert-detail); default: contiguous");
      sub.add_option("--redundant-experts", f->group.redundant_experts,
                     "with --expert-stats: extra replicas of the hottest experts per rank")
          ->capture_default_str()
          ->check(CLI::Range(0u, 1024u));
      sub.add_option("--expert-overlap", f->group.overlap,
                     "run each MoE layer's exchanges beside this rank's own compute (the shared "
                     "expert, its own rows); false: one after the other")
          ->capture_default_str();
      sub.add_option("--two-micro-batches", f->group.two_micro_batches,
                     "split each step's sequences in two, so that one half's MoE exchange "
                     "travels while the other half's attention runs (every rank of the group "
                     "must agree)")
          ->capture_default_str();
      sub.add_option("--log-format", f->log_format, "text or json")->capture_default_str();
      sub.add_option("--log-level", f->log_level, "trace, debug, info, warn, error")
          ->capture_default_str();
      return [f] { return run_worker(*f); };
    });

}  // namespace
}  // namespace v4::apps
