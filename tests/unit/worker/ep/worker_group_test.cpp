// Worker groups in one process: the rendezvous store's bounds, the flags' checks, ranks meeting
// through rank 0's gRPC store, and engines stepping in lockstep. Two Engines, each one rank of a
// group over loopback, give every request the tokens and logprobs of one engine holding every
// expert, whether both ranks have work or one idles; a rank that leaves breaks its peer's
// group within the collective timeout, through the failure handler, and nothing hangs.
#include "worker/ep/worker_group.h"

#include <future>
#include <optional>
#include <thread>

#include "tests/unit/common/free_port.h"
#include "tests/unit/worker/tiny_engine_fixture.h"
#include "worker/engine.h"

namespace v4 {
namespace {

namespace pb = v4serve::group::v1;
using namespace std::chrono_literals;

using test::free_port;

WorkerGroupOptions group_options(int rank, int ranks, int port,
                                 std::chrono::milliseconds timeout = 20s) {
  WorkerGroupOptions o;
  o.name = "test-group";
  o.rank = rank;
  o.ranks = ranks;
  o.leader = "127.0.0.1:" + std::to_string(port);
  o.timeout = timeout;
  return o;
}

TEST(RendezvousServiceTest, StoresWaitsAndRefusesWhatItCannotHold) {
  RendezvousService store;
  grpc::ServerContext context;
  pb::SetRequest set;
  pb::SetReply set_reply;
  set.set_key("a");
  set.set_value("1");
  EXPECT_TRUE(store.Set(&context, &set, &set_reply).ok());
  EXPECT_TRUE(store.Set(&context, &set, &set_reply).ok()) << "an equal rewrite is harmless";
  set.set_value("2");
  EXPECT_EQ(store.Set(&context, &set, &set_reply).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  set.set_key("");
  EXPECT_EQ(store.Set(&context, &set, &set_reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  set.set_key("big");
  set.set_value(std::string(RendezvousService::kMaxValueBytes + 1, 'x'));
  EXPECT_EQ(store.Set(&context, &set, &set_reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  pb::GetRequest get;
  pb::GetReply get_reply;
  get.add_keys("a");
  get.set_want_values(true);
  ASSERT_TRUE(store.Get(&context, &get, &get_reply).ok());
  ASSERT_EQ(get_reply.values_size(), 1);
  EXPECT_EQ(get_reply.values(0), "1");
  get.add_keys("missing");
  get.set_wait_ms(50);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(store.Get(&context, &get, &get_reply).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  pb::GetRequest none;
  EXPECT_EQ(store.Get(&context, &none, &get_reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  set.set_value("v");
  for (size_t i = store.keys(); i < RendezvousService::kMaxKeys; ++i) {
    set.set_key("k" + std::to_string(i));
    ASSERT_TRUE(store.Set(&context, &set, &set_reply).ok());
  }
  set.set_key("one-too-many");
  EXPECT_EQ(store.Set(&context, &set, &set_reply).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(WorkerGroupOptionsTest, BadFlagsAreRefusedWithTheirName) {
  WorkerGroupOptions o = group_options(0, 2, 1234);
  EXPECT_TRUE(validate(o));
  auto refused = [](WorkerGroupOptions bad, const std::string& flag) {
    const Status s = validate(bad);
    EXPECT_FALSE(s);
    EXPECT_NE(s.message().find(flag), std::string::npos) << s.message();
  };
  WorkerGroupOptions bad = o;
  bad.name = "";
  refused(bad, "--group");
  bad.name = "a/b";
  refused(bad, "--group");
  bad = o;
  bad.rank = 2;
  refused(bad, "--rank");
  bad.rank = -1;
  refused(bad, "--rank");
  bad = o;
  bad.ranks = 0;
  refused(bad, "--ranks");
  bad = o;
  bad.leader = "127.0.0.1";
  refused(bad, "--group-leader");
  bad = o;
  bad.leader_listen = "nowhere:";
  refused(bad, "--group-listen");
}

TEST(WorkerGroupTest, ARankWhoseLeaderNeverComesGivesUpInTime) {
  CpuBackend backend(1);
  const auto start = std::chrono::steady_clock::now();
  Result<std::unique_ptr<WorkerGroup>> g =
      WorkerGroup::join(group_options(1, 2, free_port(), 1s), backend, V4Config{});
  ASSERT_FALSE(g);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_NE(g.message().find("rendezvous"), std::string::npos) << g.message();
}

class WorkerGroupEngineTest : public EngineTest {
 protected:
  // Two ranks: each gets a backend and its group, joined concurrently.
  struct Rank {
    std::unique_ptr<CpuBackend> backend;
    std::unique_ptr<WorkerGroup> group;
  };
  static std::vector<Rank> join_two(
      std::chrono::milliseconds timeout = 20s, std::optional<V4Config> second = std::nullopt,
      std::vector<std::string>* errors = nullptr,
      const std::function<void(WorkerGroupOptions&)>& second_flags = {}) {
    const int port = free_port();
    std::vector<Rank> ranks(2);
    std::vector<std::future<Result<std::unique_ptr<WorkerGroup>>>> joining;
    for (int r = 0; r < 2; ++r) {
      ranks[r].backend = std::make_unique<CpuBackend>(1);
      joining.push_back(std::async(std::launch::async, [&, r] {
        const V4Config& config = r == 1 && second ? *second : weights().config;
        WorkerGroupOptions o = group_options(r, 2, port, timeout);
        if (r == 1 && second_flags) second_flags(o);
        return WorkerGroup::join(o, *ranks[r].backend, config);
      }));
    }
    for (int r = 0; r < 2; ++r) {
      Result<std::unique_ptr<WorkerGroup>> g = joining[r].get();
      if (errors)
        errors->push_back(g ? "" : g.message());
      else
        EXPECT_TRUE(g) << g.message();
      if (g) ranks[r].group = std::move(*g);
    }
    return ranks;
  }

  // Submits `requests` to `engine`; the future holds each request's events once all finish.
  struct Submitted {
    std::vector<std::vector<GenerationEvent>> events;
    std::promise<void> done;
    size_t open = 0;
    std::mutex mutex;
  };
  static void submit_all(Engine& engine, const std::vector<GenerationRequest>& requests,
                         Submitted& out) {
    out.events.resize(requests.size());
    out.open = requests.size();
    for (size_t i = 0; i < requests.size(); ++i) {
      Result<RequestId> id = engine.submit(requests[i], [&out, i](const GenerationEvent& e) {
        std::lock_guard<std::mutex> lock(out.mutex);
        out.events[i].push_back(e);
        if (e.finish != FinishReason::kNone && --out.open == 0) out.done.set_value();
      });
      ASSERT_TRUE(id) << id.message();
    }
  }
};

TEST_F(WorkerGroupEngineTest, TwoRanksMatchOneEngineBusyOrIdle) {
  std::vector<Rank> ranks = join_two();
  ASSERT_TRUE(ranks[0].group && ranks[1].group);
  std::vector<Engine*> engines;
  std::vector<std::unique_ptr<Engine>> owned;
  for (Rank& r : ranks) {
    EngineGroup g;
    g.group = std::move(r.group);
    owned.push_back(
        std::make_unique<Engine>(weights(), options(), std::move(r.backend), std::move(g)));
  }
  // Rank 0 gets greedy and seeded requests, rank 1 only two short ones: it idles (joining
  // with zero tokens) while rank 0 still decodes.
  const std::vector<GenerationRequest> all = mixed_requests(10, true);
  std::vector<GenerationRequest> first(all.begin(), all.begin() + 8),
      second(all.begin() + 8, all.end());
  for (GenerationRequest& r : first) r.sampling.max_tokens = 8;
  Submitted a, b;
  submit_all(*owned[0], first, a);
  submit_all(*owned[1], second, b);
  ASSERT_EQ(a.done.get_future().wait_for(120s), std::future_status::ready);
  ASSERT_EQ(b.done.get_future().wait_for(120s), std::future_status::ready);
  for (size_t i = 0; i < first.size(); ++i) {
    const std::vector<GenerationEvent> alone = run(options(), {first[i]}).at(1);
    ASSERT_EQ(tokens_of(alone), tokens_of(a.events[i])) << "rank 0 request " << i;
    for (size_t k = 0; k < alone.size(); ++k) EXPECT_EQ(alone[k].logprob, a.events[i][k].logprob);
  }
  for (size_t i = 0; i < second.size(); ++i)
    ASSERT_EQ(tokens_of(run(options(), {second[i]}).at(1)), tokens_of(b.events[i]));
  const EngineStats s0 = owned[0]->stats(), s1 = owned[1]->stats();
  EXPECT_GT(s0.group.dispatch_bytes, 0u);
  EXPECT_GT(s1.group.combine_bytes, 0u) << "rank 1 computed experts for rank 0";
  EXPECT_GT(s1.group.joined_steps, 0u) << "rank 1 never idled while rank 0 decoded";
  EXPECT_EQ(s0.group.exchanges % weights().config.n_layer, 0u);
}

TEST_F(WorkerGroupEngineTest, RanksWithDifferentModelsAreRefused) {
  V4Config other = weights().config;
  other.n_expert *= 2;
  std::vector<std::string> errors;
  std::vector<Rank> ranks = join_two(5s, other, &errors);
  ASSERT_EQ(errors.size(), 2u);
  for (const std::string& e : errors)
    EXPECT_NE(e.find("another shape"), std::string::npos) << "'" << e << "'";
}

// A rank in two micro-batches exchanges twice per MoE layer: its peers must too.
TEST_F(WorkerGroupEngineTest, RanksThatSplitTheirStepsOtherwiseAreRefused) {
  std::vector<std::string> errors;
  std::vector<Rank> ranks = join_two(5s, std::nullopt, &errors,
                                     [](WorkerGroupOptions& o) { o.two_micro_batches = true; });
  ASSERT_EQ(errors.size(), 2u);
  for (const std::string& e : errors)
    EXPECT_NE(e.find("--two-micro-batches"), std::string::npos) << "'" << e << "'";
}

// Each rank sizes its exchange buffers for its peers' steps of up to its own --max-batch-tokens:
// a rank with another budget is refused when the group meets, and a step beyond it at agree().
TEST_F(WorkerGroupEngineTest, RanksWithAnotherStepBudgetAreRefused) {
  std::vector<std::string> errors;
  std::vector<Rank> ranks =
      join_two(5s, std::nullopt, &errors, [](WorkerGroupOptions& o) { o.max_step_tokens = 128; });
  ASSERT_EQ(errors.size(), 2u);
  for (const std::string& e : errors)
    EXPECT_NE(e.find("--max-batch-tokens"), std::string::npos) << "'" << e << "'";
}

TEST_F(WorkerGroupEngineTest, AStepBeyondTheBudgetIsRefused) {
  const int port = free_port();
  std::vector<Rank> ranks(2);
  std::vector<std::future<Result<uint64_t>>> agreed;
  for (int r = 0; r < 2; ++r) {
    ranks[r].backend = std::make_unique<CpuBackend>(1);
    agreed.push_back(std::async(std::launch::async, [&, r]() -> Result<uint64_t> {
      WorkerGroupOptions o = group_options(r, 2, port, 5s);
      o.max_step_tokens = 64;
      Result<std::unique_ptr<WorkerGroup>> g =
          WorkerGroup::join(o, *ranks[r].backend, weights().config);
      if (!g) return g.status();
      ranks[r].group = std::move(*g);
      return ranks[r].group->agree(r == 1 ? 65 : 1);
    }));
  }
  for (int r = 0; r < 2; ++r) {
    Result<uint64_t> a = agreed[r].get();
    ASSERT_FALSE(a) << "rank " << r;
    EXPECT_NE(
        a.message().find("rank 1 announced 65 tokens for a step, beyond --max-batch-tokens 64"),
        std::string::npos)
        << a.message();
  }
}

TEST_F(WorkerGroupEngineTest, ALeavingRankBreaksItsPeerWithoutAHang) {
  std::vector<Rank> ranks = join_two(3s);
  ASSERT_TRUE(ranks[0].group && ranks[1].group);
  std::promise<std::string> broke;
  EngineGroup g0;
  g0.group = std::move(ranks[0].group);
  g0.on_failure = [&](const std::string& why) { broke.set_value(why); };
  auto engine0 =
      std::make_unique<Engine>(weights(), options(), std::move(ranks[0].backend), std::move(g0));
  EngineGroup g1;
  g1.group = std::move(ranks[1].group);
  auto engine1 =
      std::make_unique<Engine>(weights(), options(), std::move(ranks[1].backend), std::move(g1));
  GenerationRequest r = mixed_requests(1, false)[0];
  r.sampling.max_tokens = 1000;
  std::promise<FinishReason> finished;
  ASSERT_TRUE(engine0->submit(r, [&](const GenerationEvent& e) {
    if (e.finish != FinishReason::kNone) finished.set_value(e.finish);
  }));
  std::this_thread::sleep_for(200ms);
  engine1.reset();  // rank 1 leaves mid-run
  std::future<std::string> why = broke.get_future();
  ASSERT_EQ(why.wait_for(30s), std::future_status::ready) << "rank 0 did not notice";
  EXPECT_FALSE(why.get().empty());
  std::future<FinishReason> f = finished.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), FinishReason::kError);
  EXPECT_FALSE(engine0->alive());
}

}  // namespace
}  // namespace v4
