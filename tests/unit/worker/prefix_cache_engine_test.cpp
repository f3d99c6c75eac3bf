// Prefix caching end to end on the tiny model (spec §4.4): a request that resumes from cached
// pages plus the stored state snapshot (raw window, compressor carry, row counts) must produce
// exactly the tokens and logprobs of the same request on a cold cache.
#include "tests/unit/worker/tiny_engine_fixture.h"

namespace v4 {
namespace {

class PrefixEngineTest : public EngineTest {
 protected:
  static EngineOptions cached_options() {
    EngineOptions o = options();
    o.prefix_caching = true;
    // Not a multiple of the page: chunks are cut at page boundaries for the snapshots.
    o.max_batch_tokens = 100;
    return o;
  }

  // A 300-token shared prefix; `tail` tokens after it depend on `seed`.
  static GenerationRequest request(size_t tail, uint32_t seed) {
    GenerationRequest r;
    r.prompt = prompt(300, 7);
    const std::vector<int32_t> t = prompt(tail + 1, seed);
    r.prompt.insert(r.prompt.end(), t.begin() + 1, t.end());
    r.sampling.max_tokens = 3;
    r.sampling.logprobs = true;
    r.sampling.temperature = 0.8f;
    r.sampling.top_k = 50;
    r.sampling.seed = 42;
    r.sampling.repetition_penalty = 1.3f;
    return r;
  }

  static std::vector<GenerationEvent> run_one(EngineCore& core, RequestId id,
                                              const GenerationRequest& r) {
    EXPECT_TRUE(core.add(id, r));
    std::vector<GenerationEvent> events;
    for (int step = 0; core.has_work() && step < 1000; ++step)
      for (GenerationEvent& e : core.step()) events.push_back(std::move(e));
    return events;
  }

  static void expect_same(const std::vector<GenerationEvent>& a,
                          const std::vector<GenerationEvent>& b) {
    ASSERT_EQ(tokens_of(a), tokens_of(b));
    for (size_t k = 0; k < a.size(); ++k) EXPECT_EQ(a[k].logprob, b[k].logprob) << k;
  }
};

// Sampled with a repetition penalty, so the cached prompt tokens must reach the sampler too;
// logprobs compare bit-exactly.
TEST_F(PrefixEngineTest, HitOnASharedPrefixMatchesAColdCacheExactly) {
  const GenerationRequest first = request(10, 1);
  const GenerationRequest second = request(25, 2);
  const Streams cold = run(options(), {second});

  CpuBackend backend(2);
  EngineCore core(weights(), backend, cached_options());
  run_one(core, 1, first);
  EXPECT_EQ(core.worker().snapshot_count(), 2u);  // pages ending at 128 and 256
  const std::vector<GenerationEvent> warm = run_one(core, 2, second);
  expect_same(cold.at(1), warm);
  const EngineStats s = core.stats();
  EXPECT_GE(s.prefix_hits, 2u);
  EXPECT_GT(s.prefix_hit_ratio, 0.0);
  EXPECT_GT(s.prefix_snapshot_bytes, 0u);

  // Nothing leaks: a flush returns every page and the worker drops every snapshot.
  EXPECT_GT(core.flush_prefix_cache(), 0u);
  core.step();
  EXPECT_EQ(core.scheduler().allocator().used_count(), 0u);
  EXPECT_EQ(core.worker().snapshot_count(), 0u);
  EXPECT_EQ(core.worker().live_sequences(), 0u);
}

// Two pages only: the second prompt evicts the first one's cached page (its snapshot goes too),
// and a hit on a page id that was reused matches a cold cache.
TEST_F(PrefixEngineTest, EvictionUnderATightBudgetStaysExact) {
  EngineOptions o = cached_options();
  o.total_pages = 2;
  GenerationRequest a = request(0, 1);
  a.prompt = prompt(140, 3);
  GenerationRequest b = a;
  b.prompt = prompt(140, 4);
  GenerationRequest b2 = b;  // b's first page, then another tail
  b2.prompt.resize(128);
  const std::vector<int32_t> tail = prompt(13, 5);
  b2.prompt.insert(b2.prompt.end(), tail.begin() + 1, tail.end());

  CpuBackend backend(2);
  EngineCore core(weights(), backend, o);
  run_one(core, 1, a);
  run_one(core, 2, b);
  EXPECT_EQ(core.stats().prefix_evictions, 1u);
  EXPECT_EQ(core.worker().snapshot_count(), 1u);  // a's went with its page
  const std::vector<GenerationEvent> warm = run_one(core, 3, b2);
  EXPECT_EQ(core.stats().prefix_hits, 1u);
  expect_same(run(options(), {b2}).at(1), warm);
  core.flush_prefix_cache();
  core.step();
  EXPECT_EQ(core.scheduler().allocator().used_count(), 0u);
  EXPECT_EQ(core.worker().snapshot_count(), 0u);
}

// A page of a prefix cache may carry a snapshot, so the byte budget buys fewer of them.
TEST_F(PrefixEngineTest, SnapshotsAreChargedToTheKvBudget) {
  EngineOptions o = options();
  o.total_pages = 0;
  o.kv_memory_bytes = uint64_t{64} << 20;
  const V4Config& c = weights().config;
  Result<uint32_t> plain = EngineCore::pages_for_budget(c, o);
  o.prefix_caching = true;
  Result<uint32_t> cached = EngineCore::pages_for_budget(c, o);
  ASSERT_TRUE(plain && cached);
  const uint64_t page = PagedKvCache::page_bytes(c, o.page_tokens, o.storage);
  const uint64_t fixed = uint64_t{o.max_seqs} * PagedSequenceKv::fixed_bytes(c, o.max_batch_tokens);
  EXPECT_EQ(*cached, (o.kv_memory_bytes - fixed) / (page + PagedSequenceKv::fixed_bytes(c, 0)));
  EXPECT_LT(*cached, *plain);
}

}  // namespace
}  // namespace v4
