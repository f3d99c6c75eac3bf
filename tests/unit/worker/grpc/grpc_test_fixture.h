// What the gRPC tests share: a worker (engine + service + server on a loopback port), the
// events a router's callbacks received, and the conversion of engine requests for the router.
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "router/grpc/grpc_engine_client.h"
#include "tests/unit/worker/tiny_engine_fixture.h"
#include "worker/grpc/worker_service.h"

namespace v4 {

namespace pb = ::v4serve::worker::v1;
using router::EngineEvent;
using router::EngineFinish;
using router::EngineRequest;

struct TestWorker {
  std::unique_ptr<Engine> engine;
  std::unique_ptr<worker_grpc::WorkerService> service;
  std::unique_ptr<grpc::Server> server;
  std::string address;

  // `credentials` null: plaintext; `auth_token` set: calls must carry it.
  TestWorker(const V4Weights& weights, const EngineOptions& options,
             uint32_t version = pb::PROTOCOL_VERSION_CURRENT,
             std::shared_ptr<grpc::ServerCredentials> credentials = nullptr,
             std::string auth_token = "") {
    engine = std::make_unique<Engine>(weights, options, 1);
    worker_grpc::WorkerServiceOptions o;
    o.worker_id = "test";
    o.protocol_version = version;
    o.auth_token = std::move(auth_token);
    service = std::make_unique<worker_grpc::WorkerService>(*engine, o);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0",
                             credentials ? credentials : grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    address = "127.0.0.1:" + std::to_string(port);
  }
  // As a crash looks to the router: every stream ends at once.
  void kill() {
    if (!server) return;
    server->Shutdown(std::chrono::system_clock::now());
    server->Wait();
    server.reset();
  }
  ~TestWorker() {
    kill();
    engine.reset();
  }
};

// Events per request as the router's callbacks see them.
class Collector {
 public:
  router::EngineClient::EventCallback callback(size_t index) {
    return [this, index](EngineEvent e) {
      std::lock_guard<std::mutex> lock(mutex_);
      streams_[index].push_back(std::move(e));
      changed_.notify_all();
    };
  }
  // Waits until `done` holds for the streams (false after the timeout).
  template <class Pred>
  bool wait(Pred done, std::chrono::seconds timeout = std::chrono::seconds(120)) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return done(streams_); });
  }
  std::map<size_t, std::vector<EngineEvent>> streams() {
    std::lock_guard<std::mutex> lock(mutex_);
    return streams_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<size_t, std::vector<EngineEvent>> streams_;
};

inline bool all_final(const std::map<size_t, std::vector<EngineEvent>>& s, size_t n) {
  if (s.size() < n) return false;
  for (const auto& [i, events] : s)
    if (events.empty() || events.back().finish == EngineFinish::kNone) return false;
  return true;
}

inline EngineRequest to_engine_request(const GenerationRequest& g) {
  EngineRequest r;
  r.prompt = g.prompt;
  r.sampling.temperature = g.sampling.temperature;
  r.sampling.top_k = g.sampling.top_k;
  r.sampling.top_p = g.sampling.top_p;
  r.sampling.seed = g.sampling.seed;
  r.sampling.max_tokens = g.sampling.max_tokens;
  r.sampling.logprobs = g.sampling.logprobs;
  return r;
}

class GrpcWorkerTest : public EngineTest {
 protected:
  static router_grpc::GrpcClientOptions client_options(std::vector<std::string> workers) {
    router_grpc::GrpcClientOptions o;
    o.workers = std::move(workers);
    o.health_interval = std::chrono::milliseconds(200);
    o.link.rpc_timeout = std::chrono::milliseconds(2000);
    return o;
  }

  static std::vector<GenerationRequest> requests(size_t n, uint32_t max_tokens) {
    std::vector<GenerationRequest> rs = mixed_requests(n, true);
    for (size_t i = 0; i < rs.size(); ++i) {
      rs[i].sampling.max_tokens = max_tokens;
      if (i % 2) rs[i].sampling.temperature = 0.0f;  // half greedy, half seeded
    }
    return rs;
  }

  // Each stream equals the local engine's: the same tokens and logprobs, one final event.
  static void expect_reference(const std::vector<GenerationRequest>& rs,
                               const std::map<size_t, std::vector<EngineEvent>>& got) {
    const Streams reference = run(options(), rs);
    for (size_t i = 0; i < rs.size(); ++i) {
      const std::vector<GenerationEvent>& want = reference.at(i + 1);
      const std::vector<EngineEvent>& have = got.at(i);
      ASSERT_EQ(have.size(), want.size()) << "request " << i;
      for (size_t k = 0; k < want.size(); ++k) {
        EXPECT_EQ(have[k].token, want[k].token) << "request " << i << " event " << k;
        EXPECT_EQ(have[k].logprob, want[k].logprob) << "request " << i << " event " << k;
      }
      EXPECT_EQ(have.back().finish, EngineFinish::kLength) << have.back().error;
    }
  }
};

}  // namespace v4
