// The router's EngineClient over the in-process Engine on the tiny model: streamed events with a
// final one, cancellation, guided choice passed through, and the snapshot's fields.
#include "apps/local_engine_client.h"

#include <algorithm>
#include <future>

#include "tests/unit/worker/tiny_engine_fixture.h"

namespace v4 {
namespace {

using router::EngineEvent;
using router::EngineFinish;

class LocalEngineClientTest : public EngineTest {};

// Collects a request's events until its final one.
struct Collector {
  std::vector<EngineEvent> events;
  std::promise<void> done;
  router::EngineClient::EventCallback callback() {
    return [this](EngineEvent e) {
      const bool last = e.finish != EngineFinish::kNone;
      events.push_back(std::move(e));
      if (last) done.set_value();
    };
  }
  void wait() { done.get_future().wait(); }
};

TEST_F(LocalEngineClientTest, StreamsCancelsAndReports) {
  EngineOptions o = options();
  o.prefix_caching = true;
  Engine engine(weights(), o, 2);
  apps::LocalEngineClient client(engine);
  EXPECT_EQ(client.max_context(), o.max_context);

  router::EngineRequest r;
  r.prompt = prompt(300, 3);
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = 4;
  r.sampling.top_logprobs = 2;
  Collector first;
  ASSERT_TRUE(client.submit(r, first.callback()));
  first.wait();
  ASSERT_EQ(first.events.size(), 4u);
  EXPECT_EQ(first.events.back().finish, EngineFinish::kLength);
  EXPECT_GT(first.events.front().queue_seconds, 0.0);
  EXPECT_EQ(first.events.front().top_logprobs.size(), 2u);

  // Same prompt again: two full pages come from the prefix cache; guided choice passes through.
  r.sampling.allowed_outputs = {{100, 200}};
  r.sampling.stop_token_ids = {7};
  Collector second;
  ASSERT_TRUE(client.submit(r, second.callback()));
  second.wait();
  ASSERT_EQ(second.events.size(), 3u);
  EXPECT_EQ(second.events[0].cached_tokens, 256u);
  EXPECT_EQ(second.events[1].token, 200);
  EXPECT_EQ(second.events.back().finish, EngineFinish::kStop);
  // vLLM counts the partial last page as queried too; the scheduler's lookups cover full pages.
  engine.wait_idle();
  const EngineStats settled = engine.stats();
  EXPECT_EQ(client.snapshot().prefix_queries, 600u);
  EXPECT_GT(600u, (settled.prefix_hits + settled.prefix_misses) * o.page_tokens);

  router::EngineRequest long_request = r;
  // Another prompt: whether the cancel lands before or after admission, it takes no prefix hit,
  // so the hit count below does not depend on thread timing.
  long_request.prompt = prompt(300, 5);
  long_request.sampling.allowed_outputs.clear();
  long_request.sampling.max_tokens = 500;
  Collector cancelled;
  Result<router::EngineRequestId> id = client.submit(long_request, cancelled.callback());
  ASSERT_TRUE(id);
  client.cancel(*id);
  cancelled.wait();
  EXPECT_EQ(cancelled.events.back().finish, EngineFinish::kCancelled);
  EXPECT_EQ(cancelled.events.back().token, -1);

  router::EngineRequest empty;
  EXPECT_FALSE(
      client.submit(empty, [](EngineEvent) { FAIL() << "no event for a rejected request"; }));

  engine.wait_idle();
  const router::EngineSnapshot s = client.snapshot();
  const EngineStats stats = engine.stats();
  EXPECT_TRUE(s.healthy);
  EXPECT_EQ(s.running, 0u);
  EXPECT_EQ(s.waiting, 0u);
  EXPECT_EQ(s.pages_used + s.pages_free, o.total_pages);
  // The shared prompt's pages stay cached after both requests ended: free for the router
  // (vLLM counts reclaimable cached blocks as free), not used.
  EXPECT_EQ(s.pages_used, 0u);
  EXPECT_GT(s.pages_evictable, 0u);
  EXPECT_EQ(s.pages_evictable, stats.pages_evictable);
  EXPECT_EQ(s.prefix_hits, 256u);
  // vLLM's count: every prompt token of each admitted request, the last partial page included
  // (the scheduler's page counts leave it out). The cancelled request counts if it was admitted.
  auto admitted = [](const Collector& c) {
    return std::any_of(c.events.begin(), c.events.end(),
                       [](const EngineEvent& e) { return e.token >= 0; });
  };
  // (A cancel that lands after admission but before the first token is looked up by the
  // scheduler yet never counted here, so only the settled figures above compare the two.)
  EXPECT_EQ(s.prefix_queries, 300u * (2 + (admitted(cancelled) ? 1 : 0)));
  ASSERT_EQ(s.step_tokens.counts.size(), s.step_tokens.bounds.size() + 1);
  EXPECT_EQ(s.step_tokens.counts.back(), stats.steps);
  EXPECT_EQ(s.step_tokens.sum, static_cast<double>(stats.step_tokens));
  ASSERT_EQ(s.batch_size.counts.size(), s.batch_size.bounds.size() + 1);
  EXPECT_EQ(s.batch_size.counts.back(), stats.steps);  // cumulative: +Inf holds every step
  for (size_t i = 1; i < s.batch_size.counts.size(); ++i)
    EXPECT_GE(s.batch_size.counts[i], s.batch_size.counts[i - 1]);
  EXPECT_EQ(s.batch_size.counts[0], stats.batch_size.counts[0]);
  EXPECT_EQ(s.step_seconds.counts.back(), stats.steps);
  EXPECT_DOUBLE_EQ(s.step_seconds.sum, stats.step_time.sum);
  EXPECT_EQ(s.expert_selections, stats.expert_selections);
  ASSERT_EQ(s.expert_selections.size(), weights().config.n_layer);
}

TEST(LocalEngineClientConversion, EventsAndSampling) {
  GenerationEvent e;
  e.id = 3;
  e.token = 9;
  e.logprob = -0.5f;
  e.top_logprobs = {{9, -0.5f}, {4, -1.5f}};
  e.cached_tokens = 128;
  e.queue_seconds = 0.25;
  const EngineEvent out = apps::to_engine_event(e);
  EXPECT_EQ(out.token, 9);
  EXPECT_EQ(out.top_logprobs.size(), 2u);
  EXPECT_EQ(out.top_logprobs[1].token, 4);
  EXPECT_EQ(out.cached_tokens, 128u);
  EXPECT_EQ(out.queue_seconds, 0.25);
  EXPECT_EQ(out.finish, EngineFinish::kNone);
  e.finish = FinishReason::kError;
  e.error = "forward failed";
  EXPECT_EQ(apps::to_engine_event(e).error, "forward failed");
  EXPECT_EQ(apps::to_engine_event(e).finish, EngineFinish::kError);

  router::EngineSampling s;
  s.temperature = 0.7f;
  s.top_k = 5;
  s.seed = 11;
  s.logit_bias = {{1, 2.0f}};
  s.stop_token_ids = {3};
  s.allowed_outputs = {{4, 5}};
  s.constraint = OutputConstraintKind::kJsonObject;
  s.constraint_source = "{}";
  const SamplingParams p = apps::to_sampling_params(s);
  EXPECT_EQ(p.temperature, 0.7f);
  EXPECT_EQ(p.top_k, 5);
  EXPECT_EQ(p.seed, 11u);
  EXPECT_EQ(p.logit_bias, s.logit_bias);
  EXPECT_EQ(p.stop_token_ids, s.stop_token_ids);
  EXPECT_EQ(p.allowed_outputs, s.allowed_outputs);
  EXPECT_EQ(p.constraint, OutputConstraintKind::kJsonObject);
  EXPECT_EQ(p.constraint_source, "{}");
}

}  // namespace
}  // namespace v4
