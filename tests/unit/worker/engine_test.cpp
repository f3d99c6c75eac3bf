// Engine behaviour on the tiny model: paged vs contiguous KV, FP8 pages, sampling controls, the
// threaded Engine, and KV bytes per token against spec §4.2.
#include "worker/engine.h"

#include <future>
#include <set>

#include "tests/unit/worker/tiny_engine_fixture.h"

namespace v4 {
namespace {

// Paged storage against the forward's own contiguous state, greedy decode of one sequence.
TEST_F(EngineTest, PagedKvMatchesContiguousKvState) {
  GenerationRequest r;
  r.prompt = prompt(200, 3);
  r.sampling.max_tokens = 6;
  const std::vector<int32_t> paged = tokens_of(run(options(), {r}).at(1));

  CpuBackend backend(2);
  V4Forward fwd(weights(), backend);
  ContiguousKvState state(weights().config, backend);
  std::vector<int32_t> expected;
  std::vector<int32_t> next = r.prompt;
  for (uint32_t i = 0; i < r.sampling.max_tokens; ++i) {
    SequenceInput in{&state, next};
    Result<ForwardOutput> out = fwd.forward({&in, 1});
    ASSERT_TRUE(out);
    expected.push_back(argmax(out->logits));
    next = {expected.back()};
  }
  EXPECT_EQ(paged, expected);
}

// The model rounds main rows to FP8 and indexer keys to FP4 itself (§3.9), so FP8 pages lose
// nothing there; only the RoPE tail is rounded to BF16 (§4.3), which must not change the tokens
// of this run.
TEST_F(EngineTest, Fp8PagesGiveTheSameTokensAsF32Pages) {
  const std::vector<GenerationRequest> rs = mixed_requests(6, false);
  EngineOptions fp8 = options();
  fp8.storage = KvStorage::kFp8;
  const Streams a = run(options(), rs);
  const Streams b = run(fp8, rs);
  for (size_t i = 1; i <= rs.size(); ++i) EXPECT_EQ(tokens_of(a.at(i)), tokens_of(b.at(i)));
}

TEST_F(EngineTest, StopTokensPenaltiesAndTopLogprobs) {
  GenerationRequest r;
  r.prompt = prompt(20, 9);
  r.sampling.max_tokens = 8;
  r.sampling.top_logprobs = 3;
  const std::vector<GenerationEvent> plain = run(options(), {r}).at(1);
  ASSERT_EQ(plain.size(), 8u);
  ASSERT_EQ(plain[0].top_logprobs.size(), 3u);
  EXPECT_EQ(plain[0].top_logprobs[0].token, plain[0].token);  // greedy picks the best
  EXPECT_GE(plain[0].top_logprobs[0].logprob, plain[0].top_logprobs[1].logprob);

  GenerationRequest stop = r;
  stop.sampling.stop_token_ids = {plain[2].token};
  const std::vector<GenerationEvent> stopped = run(options(), {stop}).at(1);
  EXPECT_LE(stopped.size(), 3u);
  EXPECT_EQ(stopped.back().finish, FinishReason::kStop);

  GenerationRequest biased = r;
  biased.sampling.logit_bias = {{17, 1e4f}};
  const Streams biased_run = run(options(), {biased});
  for (const GenerationEvent& e : biased_run.at(1)) EXPECT_EQ(e.token, 17);

  GenerationRequest penalised = biased;
  penalised.sampling.logit_bias = {{17, 5.0f}};
  penalised.sampling.frequency_penalty = 100.0f;  // a token may not repeat
  const std::vector<int32_t> t = tokens_of(run(options(), {penalised}).at(1));
  EXPECT_EQ(std::set<int32_t>(t.begin(), t.end()).size(), t.size());
}

TEST_F(EngineTest, ThreadedEngineStreamsAndCancels) {
  EngineOptions o = options();
  Engine engine(weights(), o, 2);
  std::promise<std::vector<int32_t>> done;
  std::vector<int32_t> got;
  GenerationRequest r;
  r.prompt = prompt(30, 4);
  r.sampling.max_tokens = 5;
  Result<RequestId> a = engine.submit(r, [&](const GenerationEvent& e) {
    got.push_back(e.token);
    if (e.finish != FinishReason::kNone) done.set_value(got);
  });
  ASSERT_TRUE(a);
  std::promise<FinishReason> cancelled;
  GenerationRequest long_request = r;
  long_request.sampling.max_tokens = 500;
  Result<RequestId> b = engine.submit(long_request, [&](const GenerationEvent& e) {
    if (e.finish != FinishReason::kNone) cancelled.set_value(e.finish);
  });
  ASSERT_TRUE(b);
  const std::vector<int32_t> tokens = done.get_future().get();
  engine.cancel(*b);
  EXPECT_EQ(cancelled.get_future().get(), FinishReason::kCancelled);
  EXPECT_EQ(tokens, tokens_of(run(options(), {r}).at(1)));
  engine.wait_idle();
  EXPECT_EQ(engine.stats().pages_used, 0u);
  GenerationRequest too_long = r;
  too_long.prompt = prompt(2000, 1);
  EXPECT_FALSE(engine.submit(too_long, [](const GenerationEvent&) {}));
}

// Spec §4.2: per token, every ratio-r layer adds 1/r main row (+1/4 indexer row for r = 4).
TEST_F(EngineTest, KvBytesPerTokenMatchTheSpecFormula) {
  const V4Config& c = weights().config;
  EngineOptions o = options();
  o.max_batch_tokens = 256;
  GenerationRequest r;
  r.prompt = prompt(1000, 2);
  r.sampling.max_tokens = 2;  // pages are still held after the prefill step
  CpuBackend backend(2);
  EngineCore core(weights(), backend, o);
  ASSERT_TRUE(core.add(r));
  uint64_t peak_pages = 0;
  while (core.has_work()) {
    core.step();
    peak_pages = std::max<uint64_t>(peak_pages, core.stats().pages_used);
  }
  // Page counts do not depend on the row encoding; page sizes do.
  const KvRowShape shape{c.head_dim, c.rope_dim, c.indexer_head_dim};
  for (KvStorage storage : {KvStorage::kF32, KvStorage::kF16, KvStorage::kFp8}) {
    double formula = 0.0;
    for (uint32_t ratio : c.compress_ratios) {
      const double main = static_cast<double>(main_row_bytes(storage, shape));
      if (ratio == 4)
        formula += (main + static_cast<double>(indexer_row_bytes(storage, shape))) / 4;
      if (ratio == 128) formula += main / 128;
    }
    const double page = static_cast<double>(PagedKvCache::page_bytes(c, o.page_tokens, storage));
    const double measured = static_cast<double>(peak_pages) * page / 1000.0;
    // 1000 tokens fill 8 pages of 128: the last page is 2.4% empty.
    EXPECT_NEAR(measured / formula, 1.0, 0.05) << kv_storage_name(storage);
  }
}

}  // namespace
}  // namespace v4
