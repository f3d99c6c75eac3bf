// What the engine reports beside tokens: first-event queue time and prefix-cache hit, step
// histograms, routed-expert selection counts per layer, and the threaded Engine's health.
#include <future>
#include <numeric>

#include "model/v4/v4_weights.h"
#include "tests/unit/worker/tiny_engine_fixture.h"
#include "worker/engine.h"

namespace v4 {
namespace {

uint32_t experts_per_token(const V4Config& c, const LayerWeights& w) {
  return w.hash_routed() ? std::min(w.tid2eid_width, c.n_expert_used) : c.n_expert_used;
}

// Every forwarded token (prompt, then each sampled token but the last) picks experts_per_token
// experts in every layer; on hash-routed layers the tid2eid rows name them (spec §3.5).
TEST_F(EngineTest, ExpertSelectionsCountEveryForwardedToken) {
  const V4Config& c = weights().config;
  GenerationRequest r;
  r.prompt = prompt(150, 5);  // three prefill chunks of at most 64
  r.sampling.max_tokens = 6;
  EngineStats stats;
  const std::vector<int32_t> out = tokens_of(run(options(), {r}, &stats).at(1));
  ASSERT_EQ(out.size(), 6u);
  std::vector<int32_t> forwarded = r.prompt;
  forwarded.insert(forwarded.end(), out.begin(), out.end() - 1);

  ASSERT_EQ(stats.expert_selections.size(), c.n_layer);
  size_t hash_layers = 0;
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& w = weights().layers[il];
    const std::vector<uint64_t>& counts = stats.expert_selections[il];
    ASSERT_EQ(counts.size(), c.n_expert);
    EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), uint64_t{0}),
              forwarded.size() * experts_per_token(c, w))
        << "layer " << il;
    if (!w.hash_routed()) continue;
    ++hash_layers;
    std::vector<uint64_t> oracle(c.n_expert, 0);
    for (int32_t t : forwarded) {
      const int32_t* row = &w.tid2eid[static_cast<size_t>(t) * w.tid2eid_width];
      for (uint32_t k = 0; k < experts_per_token(c, w); ++k) ++oracle[static_cast<size_t>(row[k])];
    }
    EXPECT_EQ(counts, oracle) << "layer " << il;
  }
  EXPECT_GT(hash_layers, 0u);
}

TEST_F(EngineTest, StepHistogramsCountEveryStep) {
  EngineStats s;
  run(options(), mixed_requests(8, false), &s);
  ASSERT_GT(s.steps, 0u);
  EXPECT_EQ(s.batch_size.bounds, batch_size_bounds());
  EXPECT_EQ(s.batch_size.count, s.steps);
  EXPECT_EQ(s.batch_size.sum, static_cast<double>(s.step_sequences));
  EXPECT_EQ(std::accumulate(s.batch_size.counts.begin(), s.batch_size.counts.end(), uint64_t{0}),
            s.steps);
  EXPECT_GT(s.batch_size.counts[3], 0u);  // 8 requests: some steps ran 5..8 sequences
  EXPECT_EQ(s.batch_size.counts.back(), 0u);
  EXPECT_EQ(s.step_time.bounds, step_seconds_bounds());
  EXPECT_EQ(s.step_time.count, s.steps);
  EXPECT_NEAR(s.step_time.sum, s.step_seconds, 1e-9);
}

// Only the first event carries the queue time; a request queued behind another waits longer.
TEST_F(EngineTest, FirstEventCarriesQueueTime) {
  EngineOptions o = options();
  o.max_seqs = 1;  // the second request waits for the first to finish
  std::vector<GenerationRequest> rs = mixed_requests(2, false);
  const Streams s = run(o, rs);
  for (const auto& [id, events] : s) {
    EXPECT_GT(events.front().queue_seconds, 0.0) << id;
    EXPECT_EQ(events.front().cached_tokens, 0u);
    for (size_t k = 1; k < events.size(); ++k) EXPECT_EQ(events[k].queue_seconds, 0.0);
  }
  EXPECT_GT(s.at(2).front().queue_seconds, s.at(1).front().queue_seconds);
}

// The prefix hit is reported at admission, on the first event only.
TEST_F(EngineTest, FirstEventCarriesThePrefixHit) {
  EngineOptions o = options();
  o.prefix_caching = true;
  GenerationRequest shared;
  shared.prompt = prompt(300, 7);
  shared.sampling.max_tokens = 2;
  GenerationRequest follow = shared;
  follow.prompt.push_back(5);
  CpuBackend backend(2);
  EngineCore core(weights(), backend, o);
  ASSERT_TRUE(core.add(1, shared));
  while (core.has_work()) core.step();
  ASSERT_TRUE(core.add(2, follow));
  std::vector<GenerationEvent> events;
  while (core.has_work())
    for (GenerationEvent& e : core.step()) events.push_back(std::move(e));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].cached_tokens, 256u);  // two full pages of 128
  EXPECT_EQ(events[1].cached_tokens, 0u);
}

// A finished request's full prompt pages stay in the prefix cache, but no request holds them:
// they are evictable, not used (vLLM counts such blocks as free).
TEST_F(EngineTest, CachedPagesNoRequestHoldsAreEvictableNotUsed) {
  EngineOptions o = options();
  o.prefix_caching = true;
  GenerationRequest r;
  r.prompt = prompt(300, 9);
  r.sampling.max_tokens = 2;
  CpuBackend backend(2);
  EngineCore core(weights(), backend, o);
  const uint32_t total = core.stats().pages_free;
  ASSERT_TRUE(core.add(1, r));
  core.step();
  EXPECT_GT(core.stats().pages_used, 0u);  // held while the request runs
  while (core.has_work()) core.step();
  const EngineStats s = core.stats();
  EXPECT_EQ(s.pages_used, 0u);
  EXPECT_EQ(s.pages_evictable, 2u);  // 300 tokens fill two pages of 128
  EXPECT_EQ(s.pages_used + s.pages_evictable + s.pages_free, total);
  EXPECT_EQ(core.flush_prefix_cache(), 2u);
  EXPECT_EQ(core.stats().pages_evictable, 0u);
  EXPECT_EQ(core.stats().pages_free, total);
}

// B is admitted behind A's prefill and preempted (it is the later one) when it needs its third
// page; its two full pages stay cached, so its readmission hits them. Its first event still
// reports the admission that first ran it: no hit.
TEST_F(EngineTest, PreemptedRequestKeepsItsFirstAdmissionValues) {
  EngineOptions o = options();
  o.prefix_caching = true;
  o.total_pages = 5;
  GenerationRequest a, b;
  a.prompt = prompt(300, 1);
  a.sampling.max_tokens = 20;  // still decoding when B needs its third page
  b.prompt = prompt(300, 2);
  b.sampling.max_tokens = 2;
  CpuBackend backend(2);
  EngineCore core(weights(), backend, o);
  ASSERT_TRUE(core.add(1, a));
  ASSERT_TRUE(core.add(2, b));
  Streams s;
  while (core.has_work())
    for (GenerationEvent& e : core.step()) s[e.id].push_back(std::move(e));
  const EngineStats stats = core.stats();
  EXPECT_EQ(stats.preemptions, 1u);
  EXPECT_EQ(stats.prefix_hits, 2u);  // B's readmission
  ASSERT_EQ(s.at(2).size(), 2u);
  EXPECT_EQ(s.at(2).front().cached_tokens, 0u);
  EXPECT_EQ(tokens_of(s.at(2)), tokens_of(run(options(), {b}).at(1)));
}

TEST_F(EngineTest, CancelledEventIsAFirstEventToo) {
  CpuBackend backend(2);
  EngineCore core(weights(), backend, options());
  GenerationRequest r;
  r.prompt = prompt(20, 1);
  ASSERT_TRUE(core.add(1, r, EngineCore::Clock::now() - std::chrono::seconds(2)));
  std::optional<GenerationEvent> e = core.cancel(1);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->finish, FinishReason::kCancelled);
  EXPECT_GE(e->queue_seconds, 2.0);
  EXPECT_FALSE(core.cancel(1));
  core.step();  // the worker drops the released request
  EXPECT_EQ(core.worker().live_sequences(), 0u);
}

TEST_F(EngineTest, ThreadedEngineReportsHealthAndSteps) {
  EngineOptions o = options();
  Engine engine(weights(), o, 2);
  EXPECT_TRUE(engine.alive());
  EXPECT_EQ(engine.steps(), 0u);
  EXPECT_EQ(engine.max_context(), o.max_context);
  EXPECT_EQ(engine.options().page_tokens, o.page_tokens);
  std::promise<GenerationEvent> first;
  bool seen = false;
  GenerationRequest r;
  r.prompt = prompt(30, 4);
  r.sampling.max_tokens = 3;
  ASSERT_TRUE(engine.submit(r, [&](const GenerationEvent& e) {
    if (!seen) first.set_value(e);
    seen = true;
  }));
  const GenerationEvent e = first.get_future().get();
  EXPECT_GT(e.queue_seconds, 0.0);
  engine.wait_idle();
  EXPECT_EQ(engine.steps(), 3u);  // one prefill step, two decodes
  EXPECT_TRUE(engine.alive());
  const EngineStats s = engine.stats();
  EXPECT_EQ(s.batch_size.count, 3u);
  EXPECT_EQ(s.expert_selections.size(), weights().config.n_layer);
}

}  // namespace
}  // namespace v4
