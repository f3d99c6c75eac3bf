// Prefix pages on disk end to end on the tiny model: a page evicted from memory, or left by an
// engine that stopped, comes back from the disk store and the request resuming from it produces
// exactly the tokens and logprobs of the same request on a cold cache (the oracle: a run without
// any cache).
#include <unistd.h>

#include "tests/unit/worker/tiny_engine_fixture.h"

namespace v4 {
namespace {
namespace fs = std::filesystem;

class DiskPrefixEngineTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    dir_ = fs::temp_directory_path() /
           ("kv-disk-engine-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  EngineOptions disk_options(uint32_t pages, uint64_t identity = 5) const {
    EngineOptions o = options();
    o.prefix_caching = true;
    o.max_batch_tokens = 100;
    o.total_pages = pages;
    o.kv_disk_dir = dir_.string();
    o.kv_disk_bytes = uint64_t{1} << 30;
    o.model_identity = identity;
    return o;
  }

  // A 300-token shared prefix (two full pages of 128), then a tail of its own.
  static GenerationRequest request(size_t tail, uint32_t seed) {
    GenerationRequest r;
    r.prompt = prompt(300, 7);
    const std::vector<int32_t> t = prompt(tail + 1, seed);
    r.prompt.insert(r.prompt.end(), t.begin() + 1, t.end());
    r.sampling.max_tokens = 4;
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

  fs::path dir_;
};

// Three pages: the second prompt's pages evict the first one's, which spill; the third request
// shares the first prefix and loads both of its pages from disk.
TEST_F(DiskPrefixEngineTest, EvictedPagesComeBackFromDiskExactly) {
  const GenerationRequest first = request(10, 1);
  GenerationRequest other = request(10, 1);
  other.prompt = prompt(310, 9);
  const GenerationRequest again = request(25, 2);
  CpuBackend backend(2);
  EngineCore core(weights(), backend, disk_options(3));
  run_one(core, 1, first);
  run_one(core, 2, other);
  EXPECT_GE(core.stats().prefix_evictions, 2u);
  const std::vector<GenerationEvent> warm = run_one(core, 3, again);
  const EngineStats s = core.stats();
  EXPECT_EQ(s.kv_disk_hits, 2u);
  EXPECT_GE(s.prefix_hits, 2u);
  EXPECT_EQ(warm.front().cached_tokens, 256u);
  expect_same(run(options(), {again}).at(1), warm);
}

// An engine that stops leaves its cached pages on disk; a new engine on the same directory
// resumes a conversation from them.
TEST_F(DiskPrefixEngineTest, PagesSurviveARestart) {
  {
    CpuBackend backend(2);
    EngineCore core(weights(), backend, disk_options(16));
    run_one(core, 1, request(10, 1));
  }
  const GenerationRequest again = request(25, 2);
  CpuBackend backend(2);
  EngineCore core(weights(), backend, disk_options(16));
  const std::vector<GenerationEvent> warm = run_one(core, 1, again);
  EXPECT_EQ(core.stats().kv_disk_hits, 2u);
  EXPECT_EQ(warm.front().cached_tokens, 256u);
  expect_same(run(options(), {again}).at(1), warm);
}

// Pages of another model identity are never loaded.
TEST_F(DiskPrefixEngineTest, AnotherModelIdentityNeverHits) {
  {
    CpuBackend backend(2);
    EngineCore core(weights(), backend, disk_options(16, 5));
    run_one(core, 1, request(10, 1));
    EXPECT_EQ(core.stats().kv_disk_hits, 0u);
  }
  EXPECT_FALSE(fs::is_empty(dir_));
  CpuBackend backend(2);
  EngineCore core(weights(), backend, disk_options(16, 6));
  const GenerationRequest again = request(25, 2);
  const std::vector<GenerationEvent> cold = run_one(core, 1, again);
  EXPECT_EQ(core.stats().kv_disk_hits, 0u);
  EXPECT_EQ(cold.front().cached_tokens, 0u);
  expect_same(run(options(), {again}).at(1), cold);
}

}  // namespace
}  // namespace v4
