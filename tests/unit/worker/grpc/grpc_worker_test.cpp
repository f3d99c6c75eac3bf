// The gRPC boundary in one process: requests and events survive the wire, a router and a worker
// of different protocol versions refuse each other, and a router over real gRPC workers gives
// the tokens of a local engine, also when a worker is lost mid-stream (the requests continue
// elsewhere without a gap, a duplicate or a changed token), drains, or none is left.
#include <grpcpp/grpcpp.h>

#include <condition_variable>

#include "router/grpc/grpc_engine_client.h"
#include "router/grpc/router_proto.h"
#include "tests/unit/worker/tiny_engine_fixture.h"
#include "worker/grpc/worker_proto.h"
#include "worker/grpc/worker_service.h"

namespace v4 {
namespace {

namespace pb = ::v4serve::worker::v1;
using router::EngineEvent;
using router::EngineFinish;
using router::EngineRequest;

struct TestWorker {
  std::unique_ptr<Engine> engine;
  std::unique_ptr<worker_grpc::WorkerService> service;
  std::unique_ptr<grpc::Server> server;
  std::string address;

  TestWorker(const V4Weights& weights, const EngineOptions& options,
             uint32_t version = pb::PROTOCOL_VERSION_CURRENT) {
    engine = std::make_unique<Engine>(weights, options, 1);
    worker_grpc::WorkerServiceOptions o;
    o.worker_id = "test";
    o.protocol_version = version;
    service = std::make_unique<worker_grpc::WorkerService>(*engine, o);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
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

bool all_final(const std::map<size_t, std::vector<EngineEvent>>& s, size_t n) {
  if (s.size() < n) return false;
  for (const auto& [i, events] : s)
    if (events.empty() || events.back().finish == EngineFinish::kNone) return false;
  return true;
}

EngineRequest to_engine_request(const GenerationRequest& g) {
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

TEST(GrpcProto, RequestSurvivesTheWire) {
  EngineRequest r;
  r.prompt = {0, 5, 9, 11, 13};
  r.sampling.temperature = 0.7f;
  r.sampling.top_p = 0.9f;
  r.sampling.top_k = 12;
  r.sampling.min_p = 0.01f;
  r.sampling.seed = 0xfedcba9876543210ull;
  r.sampling.presence_penalty = 0.5f;
  r.sampling.frequency_penalty = 0.25f;
  r.sampling.repetition_penalty = 1.1f;
  r.sampling.logit_bias = {{3, -2.0f}, {7, 1.5f}};
  r.sampling.stop_token_ids = {1, 2};
  r.sampling.max_tokens = 33;
  r.sampling.logprobs = true;
  r.sampling.top_logprobs = 4;
  r.sampling.prompt_logprobs = 2;
  r.sampling.allowed_outputs = {{4, 5}, {6}};
  for (uint32_t resumed : {0u, 2u}) {
    pb::SubmitRequest m;
    router_grpc::to_proto(r, 77, resumed, m);
    pb::SubmitRequest wire;
    ASSERT_TRUE(wire.ParseFromString(m.SerializeAsString()));
    Result<GenerationRequest> g = worker_grpc::from_proto(wire);
    ASSERT_TRUE(g) << g.message();
    EXPECT_EQ(wire.id(), 77u);
    EXPECT_EQ(g->prompt, r.prompt);
    EXPECT_EQ(g->resumed_tokens, resumed);
    const SamplingParams& p = g->sampling;
    EXPECT_EQ(p.temperature, 0.7f);
    EXPECT_EQ(p.top_p, 0.9f);
    EXPECT_EQ(p.top_k, 12);
    EXPECT_EQ(p.min_p, 0.01f);
    EXPECT_EQ(p.seed, 0xfedcba9876543210ull);
    EXPECT_EQ(p.presence_penalty, 0.5f);
    EXPECT_EQ(p.frequency_penalty, 0.25f);
    EXPECT_EQ(p.repetition_penalty, 1.1f);
    EXPECT_EQ(p.logit_bias, r.sampling.logit_bias);
    EXPECT_EQ(p.stop_token_ids, r.sampling.stop_token_ids);
    EXPECT_EQ(p.max_tokens, 33u);
    EXPECT_TRUE(p.logprobs);
    EXPECT_EQ(p.top_logprobs, 4u);
    // A continuation's prompt scores went out with its first token already.
    EXPECT_EQ(p.prompt_logprobs, resumed ? std::nullopt : std::optional<uint32_t>(2));
    EXPECT_EQ(p.allowed_outputs, r.sampling.allowed_outputs);
  }
}

TEST(GrpcProto, EventSurvivesTheWire) {
  GenerationEvent g;
  g.id = 3;
  g.token = 42;
  g.logprob = -0.125f;
  g.top_logprobs = {{42, -0.125f}, {7, -2.5f}};
  g.prompt_logprobs = {{5, -1.0f, 2, {{6, -0.5f}}}};
  g.finish = FinishReason::kStop;
  g.cached_tokens = 128;
  g.queue_seconds = 0.25;
  pb::Event m;
  worker_grpc::to_proto(g, 99, 6, m);
  pb::Event wire;
  ASSERT_TRUE(wire.ParseFromString(m.SerializeAsString()));
  EXPECT_EQ(wire.id(), 99u);
  EXPECT_EQ(wire.token_index(), 6u);
  const EngineEvent e = router_grpc::from_proto(wire);
  EXPECT_EQ(e.token, 42);
  EXPECT_EQ(e.logprob, -0.125f);
  ASSERT_EQ(e.top_logprobs.size(), 2u);
  EXPECT_EQ(e.top_logprobs[1].token, 7);
  EXPECT_EQ(e.top_logprobs[1].logprob, -2.5f);
  ASSERT_EQ(e.prompt_logprobs.size(), 1u);
  EXPECT_EQ(e.prompt_logprobs[0].rank, 2u);
  EXPECT_EQ(e.prompt_logprobs[0].top[0].token, 6);
  EXPECT_EQ(e.finish, EngineFinish::kStop);
  EXPECT_EQ(e.cached_tokens, 128u);
  EXPECT_EQ(e.queue_seconds, 0.25);
}

TEST(GrpcProto, OutOfRangeSamplingIsRefusedAtTheBoundary) {
  pb::SubmitRequest m;
  m.add_prompt(1);
  m.mutable_sampling()->set_top_p(1.5f);
  EXPECT_FALSE(worker_grpc::from_proto(m));
}

TEST_F(GrpcWorkerTest, RouterAndWorkerOfDifferentVersionsRefuseEachOther) {
  TestWorker newer(weights(), options(), pb::PROTOCOL_VERSION_CURRENT + 1);
  router_grpc::WorkerLink link(
      newer.address, {}, [](uint64_t, pb::Events&) {}, [](uint64_t, const std::string&) {});
  Result<pb::HealthResponse> health = link.health();
  ASSERT_FALSE(health);
  EXPECT_NE(health.message().find("protocol version mismatch"), std::string::npos)
      << health.message();
  EXPECT_NE(health.message().find("speaks 2"), std::string::npos) << health.message();
  pb::Welcome welcome;
  Result<uint64_t> stream = link.open(welcome);
  ASSERT_FALSE(stream);
  EXPECT_NE(stream.message().find("protocol version mismatch"), std::string::npos)
      << stream.message();
  // The router serves nothing through it: no worker is usable, so requests are refused.
  router_grpc::GrpcEngineClient client(client_options({newer.address}));
  client.start();
  EXPECT_EQ(client.usable_workers(), 0u);
  EXPECT_FALSE(client.ready());
  Collector c;
  EXPECT_FALSE(client.submit(to_engine_request(requests(1, 4)[0]), c.callback(0)));
}

TEST_F(GrpcWorkerTest, RouterOverWorkersGivesTheLocalEngineTokens) {
  TestWorker a(weights(), options()), b(weights(), options());
  router_grpc::GrpcClientOptions o = client_options({a.address, b.address});
  o.link.batch_window = std::chrono::milliseconds(5);
  router_grpc::GrpcEngineClient client(o);
  client.start();
  ASSERT_EQ(client.usable_workers(), 2u);
  const std::vector<GenerationRequest> rs = requests(12, 6);
  Collector c;
  for (size_t i = 0; i < rs.size(); ++i)
    ASSERT_TRUE(client.submit(to_engine_request(rs[i]), c.callback(i)));
  ASSERT_TRUE(c.wait([&](const auto& s) { return all_final(s, rs.size()); }));
  expect_reference(rs, c.streams());
  const router_grpc::GrpcClientCounters counters = client.counters();
  EXPECT_EQ(counters.submitted, rs.size());
  // Submitted back to back within the 5 ms window: far fewer messages than requests.
  EXPECT_LT(counters.submit_messages, rs.size());
  EXPECT_EQ(counters.resubmitted, 0u);
  EXPECT_GT(client.snapshot().step_tokens.counts.size(), 0u);
}

TEST_F(GrpcWorkerTest, LostWorkerMidStreamChangesNoToken) {
  auto a = std::make_unique<TestWorker>(weights(), options());
  TestWorker b(weights(), options());
  router_grpc::GrpcEngineClient client(client_options({a->address, b.address}));
  client.start();
  // Long enough that worker a is still generating when it dies, however fast the machine.
  const std::vector<GenerationRequest> rs = requests(8, 160);
  Collector c;
  for (size_t i = 0; i < rs.size(); ++i)
    ASSERT_TRUE(client.submit(to_engine_request(rs[i]), c.callback(i)));
  // Every request has streamed a little: then worker a dies.
  ASSERT_TRUE(c.wait([&](const auto& s) {
    if (s.size() < rs.size()) return false;
    for (const auto& [i, events] : s)
      if (events.size() < 2) return false;
    return true;
  }));
  a->kill();
  ASSERT_TRUE(c.wait([&](const auto& s) { return all_final(s, rs.size()); }));
  expect_reference(rs, c.streams());
  EXPECT_GT(client.counters().resubmitted, 0u) << "no request was running on the lost worker";
}

TEST_F(GrpcWorkerTest, DrainingWorkerHandsNewRequestsOn) {
  TestWorker a(weights(), options()), b(weights(), options());
  router_grpc::GrpcClientOptions o = client_options({a.address, b.address});
  o.health_interval = std::chrono::seconds(600);  // the router has not seen the drain yet
  router_grpc::GrpcEngineClient client(o);
  client.start();
  a.service->drain();
  const std::vector<GenerationRequest> rs = requests(6, 4);
  Collector c;
  for (size_t i = 0; i < rs.size(); ++i)
    ASSERT_TRUE(client.submit(to_engine_request(rs[i]), c.callback(i)));
  ASSERT_TRUE(c.wait([&](const auto& s) { return all_final(s, rs.size()); }));
  expect_reference(rs, c.streams());
  EXPECT_EQ(a.engine->stats().steps, 0u) << "the draining worker ran a request";
}

TEST_F(GrpcWorkerTest, NoWorkerLeftEndsEveryRequestWithAnError) {
  TestWorker a(weights(), options());
  router_grpc::GrpcEngineClient client(client_options({a.address}));
  client.start();
  const std::vector<GenerationRequest> rs = requests(4, 200);
  Collector c;
  for (size_t i = 0; i < rs.size(); ++i)
    ASSERT_TRUE(client.submit(to_engine_request(rs[i]), c.callback(i)));
  ASSERT_TRUE(c.wait([&](const auto& s) { return !s.empty(); }));
  a.kill();
  ASSERT_TRUE(
      c.wait([&](const auto& s) { return all_final(s, rs.size()); }, std::chrono::seconds(30)))
      << "a request hangs after its last worker died";
  for (const auto& [i, events] : c.streams()) {
    EXPECT_EQ(events.back().finish, EngineFinish::kError);
    EXPECT_NE(events.back().error.find("no worker is available"), std::string::npos);
  }
  EXPECT_FALSE(client.ready());
  EXPECT_FALSE(client.submit(to_engine_request(rs[0]), c.callback(9)));
}

}  // namespace
}  // namespace v4
