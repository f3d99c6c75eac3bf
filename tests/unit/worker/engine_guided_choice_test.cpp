// Guided choice end to end on the tiny model: the output is one of the allowed sequences (then
// the stop token), greedy and seeded, unchanged by batching and by preemption by recompute.
#include "tests/unit/worker/tiny_engine_fixture.h"

namespace v4 {
namespace {

using Ids = std::vector<int32_t>;

constexpr int32_t kStop = 7;
const std::vector<Ids> kChoices = {{100, 200, 300}, {100, 400}};

void expect_one_choice(const std::vector<int32_t>& out, bool with_stop) {
  bool ok = false;
  for (Ids choice : kChoices) {
    if (with_stop) choice.push_back(kStop);
    ok = ok || out == choice;
  }
  EXPECT_TRUE(ok) << "output of " << out.size() << " tokens starting " << out.front();
}

class GuidedEngineTest : public EngineTest {
 protected:
  static GenerationRequest guided(size_t prompt_len, uint32_t seed, bool sampled) {
    GenerationRequest r;
    r.prompt = prompt(prompt_len, seed);
    r.sampling.allowed_outputs = kChoices;
    r.sampling.stop_token_ids = {kStop, 8};
    r.sampling.max_tokens = 10;
    r.sampling.logprobs = true;
    if (sampled) {
      r.sampling.temperature = 1.5f;
      r.sampling.seed = seed;
    }
    return r;
  }
};

TEST_F(GuidedEngineTest, GreedyAndSeededOutputsAreChoices) {
  std::set<Ids> outputs;
  for (uint32_t seed = 0; seed < 12; ++seed) {
    const std::vector<GenerationEvent> events =
        run(options(), {guided(20 + seed, seed, seed > 0)}).at(1);
    expect_one_choice(tokens_of(events), true);
    EXPECT_EQ(events.back().finish, FinishReason::kStop);
    outputs.insert(tokens_of(events));
  }
  EXPECT_EQ(outputs.size(), 2u);  // both choices are reachable
}

TEST_F(GuidedEngineTest, WithoutStopTokenEndsWithTheSequence) {
  GenerationRequest r = guided(30, 1, false);
  r.sampling.stop_token_ids.clear();
  const std::vector<GenerationEvent> events = run(options(), {r}).at(1);
  expect_one_choice(tokens_of(events), false);
  EXPECT_EQ(events.back().finish, FinishReason::kStop);

  r.sampling.max_tokens = 1;
  const std::vector<GenerationEvent> cut = run(options(), {r}).at(1);
  EXPECT_EQ(tokens_of(cut), (Ids{100}));
  EXPECT_EQ(cut.back().finish, FinishReason::kLength);
}

TEST_F(GuidedEngineTest, IsBatchInvariant) {
  std::vector<GenerationRequest> rs = mixed_requests(12, true);
  for (size_t i = 0; i < rs.size(); i += 3)
    rs[i] = guided(10 + i * 5, static_cast<uint32_t>(i), i % 2);
  const Streams together = run(options(), rs);
  for (size_t i = 0; i < rs.size(); i += 3) {
    const std::vector<GenerationEvent> alone = run(options(), {rs[i]}).at(1);
    const std::vector<GenerationEvent>& batched = together.at(i + 1);
    expect_one_choice(tokens_of(batched), true);
    ASSERT_EQ(tokens_of(alone), tokens_of(batched)) << "request " << i;
    for (size_t k = 0; k < alone.size(); ++k) EXPECT_EQ(alone[k].logprob, batched[k].logprob);
  }
}

// Long choices that cross a page boundary under a budget that forces preemption: the recompute
// must not replay the guided state.
TEST_F(GuidedEngineTest, SurvivesPreemption) {
  Ids a, b;
  for (int32_t i = 0; i < 28; ++i) {
    a.push_back(1000 + i);
    b.push_back(i < 14 ? 1000 + i : 2000 + i);
  }
  std::vector<GenerationRequest> rs;
  for (uint32_t i = 0; i < 6; ++i) {
    GenerationRequest r;
    r.prompt = prompt(100 + i * 5, i);
    r.sampling.allowed_outputs = {a, b};
    r.sampling.stop_token_ids = {kStop};
    r.sampling.max_tokens = 40;
    r.sampling.temperature = 1.0f;
    r.sampling.seed = i;
    rs.push_back(std::move(r));
  }
  const Streams free_run = run(options(), rs);
  EngineOptions tight = options();
  tight.total_pages = 4;
  EngineStats stats;
  const Streams constrained = run(tight, rs, &stats);
  EXPECT_GT(stats.preemptions, 0u);
  for (size_t i = 1; i <= rs.size(); ++i) {
    const Ids out = tokens_of(constrained.at(i));
    EXPECT_EQ(tokens_of(free_run.at(i)), out) << "request " << i;
    ASSERT_EQ(out.size(), 29u);
    EXPECT_EQ(out.back(), kStop);
    const Ids body(out.begin(), out.end() - 1);
    EXPECT_TRUE(body == a || body == b) << "request " << i;
  }
}

TEST_F(GuidedEngineTest, Validation) {
  CpuBackend backend(1);
  EngineCore core(weights(), backend, options());
  GenerationRequest r = guided(10, 1, false);
  r.sampling.allowed_outputs = {{100, static_cast<int32_t>(kTestVocab)}};
  EXPECT_FALSE(core.validate(r));
  r.sampling.allowed_outputs = {{}};
  EXPECT_TRUE(core.validate(r));  // the stop token alone
  r.sampling.stop_token_ids.clear();
  EXPECT_FALSE(core.validate(r));
}

}  // namespace
}  // namespace v4
