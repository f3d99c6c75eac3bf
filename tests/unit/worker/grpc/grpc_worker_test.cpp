// The gRPC boundary in one process: requests and events survive the wire, a router and a worker
// of different protocol versions refuse each other, and a router over real gRPC workers gives
// the tokens of a local engine, also when a worker is lost mid-stream (the requests continue
// elsewhere without a gap, a duplicate or a changed token), drains, or none is left.
#include "router/grpc/router_proto.h"
#include "tests/unit/worker/grpc/grpc_test_fixture.h"
#include "worker/grpc/worker_proto.h"

namespace v4 {
namespace {

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
  r.sampling.constraint = OutputConstraintKind::kJsonSchema;
  r.sampling.constraint_source = R"({"type":"integer"})";
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
    EXPECT_EQ(p.constraint, OutputConstraintKind::kJsonSchema);
    EXPECT_EQ(p.constraint_source, r.sampling.constraint_source);
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
