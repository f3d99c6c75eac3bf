// Prefix caching in the scheduler (spec §4.4), replayed step by step: hits on repeated and
// partially repeated prompts, reference counts, LRU eviction order under a tight page budget,
// and page accounting that returns to zero once the cache is flushed.
#include "scheduler/prefix_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>

#include "scheduler/scheduler.h"

namespace v4 {
namespace {

SchedulerConfig cached_config(uint32_t pages, uint32_t batch = 512) {
  return {.page_tokens = 128,
          .total_pages = pages,
          .max_batch_tokens = batch,
          .max_seqs = 4,
          .prefix_caching = true};
}

std::vector<int32_t> tokens(size_t n, int32_t seed) {
  std::vector<int32_t> t;
  for (size_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>((i * 7919 + seed * 31) % 5000));
  return t;
}

// Drives the loop like the engine: every sampled request gets token 7 until it has produced
// max_out tokens. Plans are described as in scheduler_test.cpp ("A128", "A44s").
class Replay {
 public:
  explicit Replay(const SchedulerConfig& c) : scheduler(c) {}
  RequestId add(char name, std::vector<int32_t> prompt, size_t max_out) {
    const RequestId id = next_id_++;
    names_[id] = name;
    max_out_[id] = max_out;
    EXPECT_TRUE(scheduler.add(id, std::move(prompt)));
    return id;
  }
  std::string step() {
    last = scheduler.schedule();
    StepOutput out;
    std::string d;
    for (const ScheduledSequence& s : last.sequences) {
      if (!d.empty()) d += ' ';
      d += names_.at(s.id) + std::to_string(s.tokens.size()) + (s.samples ? "s" : "");
      if (!s.samples) continue;
      const size_t n = ++produced_[s.id];
      out.sampled.push_back({s.id, 7, n >= max_out_[s.id]});
    }
    scheduler.update(last, out);
    return d;
  }
  void run_all() {
    for (int i = 0; i < 1000 && scheduler.has_work(); ++i) step();
    EXPECT_FALSE(scheduler.has_work());
  }
  Scheduler scheduler;
  StepPlan last;

 private:
  RequestId next_id_ = 1;
  std::map<RequestId, char> names_;
  std::map<RequestId, size_t> max_out_, produced_;
};

TEST(PrefixCache, ChainHashDependsOnTheParentAndTheTokens) {
  const std::vector<int32_t> a = tokens(128, 1), b = tokens(128, 2);
  EXPECT_EQ(PrefixCache::chain_hash(0, a), PrefixCache::chain_hash(0, a));
  EXPECT_NE(PrefixCache::chain_hash(0, a), PrefixCache::chain_hash(0, b));
  EXPECT_NE(PrefixCache::chain_hash(1, a), PrefixCache::chain_hash(2, a));
}

TEST(PrefixCache, SecondIdenticalPromptHitsItsFullPages) {
  Replay r(cached_config(16));
  const std::vector<int32_t> p = tokens(300, 1);
  r.add('A', p, 1);
  // Chunks stop at page boundaries, where the worker snapshots the state (§4.4).
  EXPECT_EQ(r.step(), "A128");
  EXPECT_TRUE(r.last.sequences[0].snapshot);
  EXPECT_EQ(r.step(), "A128");
  EXPECT_EQ(r.step(), "A44s");
  EXPECT_FALSE(r.last.sequences[0].snapshot);
  EXPECT_EQ(r.step(), "");
  // A left: its two full pages stay cached, the partial third one is freed.
  EXPECT_EQ(r.scheduler.stats().pages_cached, 2u);
  EXPECT_EQ(r.scheduler.allocator().used_count(), 2u);
  EXPECT_EQ(r.last.freed_pages, std::vector<PageId>{2});

  r.add('B', p, 1);
  EXPECT_EQ(r.step(), "B44s");
  const ScheduledSequence& b = r.last.sequences[0];
  EXPECT_EQ(b.first_position, 256u);
  EXPECT_EQ(b.cached_tokens, std::vector<int32_t>(p.begin(), p.begin() + 256));
  EXPECT_EQ(b.pages, (std::vector<PageId>{0, 1, 2}));
  EXPECT_EQ(b.new_pages, std::vector<PageId>{2});
  const SchedulerStats s = r.scheduler.stats();
  EXPECT_EQ(s.prefix_hits, 2u);
  EXPECT_EQ(s.prefix_misses, 2u);  // A's two lookups
  EXPECT_EQ(r.scheduler.flush_prefix_cache(), 2u);
  EXPECT_EQ(r.scheduler.allocator().used_count(), 0u);
  EXPECT_EQ(r.scheduler.schedule().evicted_pages, (std::vector<PageId>{1, 0}));
}

TEST(PrefixCache, HitLeavesAtLeastOnePromptTokenToCompute) {
  Replay r(cached_config(16));
  const std::vector<int32_t> p = tokens(256, 3);
  r.add('A', p, 1);
  r.run_all();
  EXPECT_EQ(r.scheduler.stats().pages_cached, 2u);
  r.add('B', p, 1);
  // Both pages are cached, but the last token's logits are needed: page 1 is recomputed.
  EXPECT_EQ(r.step(), "B128s");
  EXPECT_EQ(r.last.sequences[0].first_position, 128u);
  EXPECT_EQ(r.scheduler.stats().prefix_hits, 1u);
}

TEST(PrefixCache, PartialPrefixHitsOnlyTheMatchingPages) {
  Replay r(cached_config(16));
  const std::vector<int32_t> a = tokens(300, 1);
  r.add('A', a, 1);
  r.run_all();
  std::vector<int32_t> b(a.begin(), a.begin() + 178);  // page 0 equal, page 1 differs
  const std::vector<int32_t> tail = tokens(222, 9);
  b.insert(b.end(), tail.begin(), tail.end());
  const RequestId id = r.add('B', b, 1);
  EXPECT_EQ(r.step(), "B128");
  EXPECT_EQ(r.last.sequences[0].first_position, 128u);
  EXPECT_EQ(r.scheduler.pages_of(id)[0], 0u);
  EXPECT_EQ(r.scheduler.prefix_cache().ref_count(0), 1u);
  EXPECT_EQ(r.step(), "B128");
  EXPECT_EQ(r.step(), "B16s");
  const SchedulerStats s = r.scheduler.stats();
  EXPECT_EQ(s.prefix_hits, 1u);
  EXPECT_EQ(s.prefix_misses, 2u + 2u);  // A: 2 lookups; B: pages 1 and 2 missed
  // B's two full pages were new: A's 2 + B's 2 cached.
  EXPECT_EQ(s.pages_cached, 4u);
}

TEST(PrefixCache, ReferenceCountsFollowTheBlockTables) {
  Replay r(cached_config(16));
  const std::vector<int32_t> p = tokens(300, 4);
  const RequestId a = r.add('A', p, 6);
  for (int i = 0; i < 3; ++i) r.step();  // A's prefill
  const RequestId b = r.add('B', p, 2);
  EXPECT_EQ(r.step(), "A1s B44s");
  const std::vector<PageId> shared{r.scheduler.pages_of(a)[0], r.scheduler.pages_of(a)[1]};
  EXPECT_EQ(r.scheduler.pages_of(b)[0], shared[0]);
  EXPECT_EQ(r.scheduler.pages_of(b)[1], shared[1]);
  for (PageId p : shared) EXPECT_EQ(r.scheduler.prefix_cache().ref_count(p), 2u);
  EXPECT_EQ(r.step(), "A1s B1s");  // B leaves
  for (PageId p : shared) EXPECT_EQ(r.scheduler.prefix_cache().ref_count(p), 1u);
  r.run_all();
  for (PageId p : shared) EXPECT_EQ(r.scheduler.prefix_cache().ref_count(p), 0u);
  EXPECT_EQ(r.scheduler.prefix_cache().lru_order(), (std::vector<PageId>{shared[1], shared[0]}));
  r.scheduler.flush_prefix_cache();
  EXPECT_EQ(r.scheduler.allocator().used_count(), 0u);
}

TEST(PrefixCache, ConcurrentEqualPromptsKeepOneCopyCached) {
  Replay r(cached_config(16));
  const std::vector<int32_t> p = tokens(300, 5);
  r.add('A', p, 1);
  r.add('B', p, 1);
  r.run_all();
  // Both computed pages 0 and 1; B's copies were duplicates and went back to the allocator.
  EXPECT_EQ(r.scheduler.stats().pages_cached, 2u);
  EXPECT_EQ(r.scheduler.allocator().used_count(), 2u);
  EXPECT_EQ(r.scheduler.flush_prefix_cache(), 2u);
  EXPECT_EQ(r.scheduler.allocator().used_count(), 0u);
}

TEST(PrefixCache, EvictsLeastRecentlyReleasedPagesTailFirst) {
  Replay r(cached_config(4));
  const std::vector<int32_t> a = tokens(257, 1);
  r.add('A', a, 1);
  r.run_all();
  // A's pages 0 and 1 are cached; the tail page goes first.
  EXPECT_EQ(r.scheduler.prefix_cache().lru_order(), (std::vector<PageId>{1, 0}));
  r.add('B', tokens(257, 2), 1);
  EXPECT_EQ(r.step(), "B128");  // page 2
  EXPECT_EQ(r.step(), "B128");  // page 3
  EXPECT_TRUE(r.last.evicted_pages.empty());
  EXPECT_EQ(r.step(), "B1s");  // no free page left: evict A's page 1
  EXPECT_EQ(r.last.evicted_pages, std::vector<PageId>{1});
  EXPECT_EQ(r.scheduler.stats().prefix_evictions, 1u);
  // B released page 1 (partial, freed) and cached 2, 3 behind A's page 0.
  EXPECT_EQ(r.scheduler.prefix_cache().lru_order(), (std::vector<PageId>{0, 3, 2}));
  // A's prompt again: page 0 still hits, page 1 was evicted.
  r.add('C', a, 1);
  EXPECT_EQ(r.step(), "C128");
  EXPECT_EQ(r.last.sequences[0].first_position, 128u);
  EXPECT_EQ(r.last.sequences[0].pages, (std::vector<PageId>{0, 1}));
  EXPECT_EQ(r.step(), "C1s");  // the third page evicts B's tail page 3
  EXPECT_EQ(r.last.evicted_pages, std::vector<PageId>{3});
  r.run_all();
  EXPECT_EQ(r.scheduler.stats().prefix_evictions, 2u);
  EXPECT_EQ(r.scheduler.stats().prefix_hits, 1u);
  r.scheduler.flush_prefix_cache();
  EXPECT_EQ(r.scheduler.allocator().used_count(), 0u);
}

TEST(PrefixCache, CancelKeepsSharedPagesCachedAndFlushFreesThem) {
  Replay r(cached_config(8));
  const std::vector<int32_t> p = tokens(300, 6);
  r.add('A', p, 1);
  r.run_all();
  const RequestId b = r.add('B', p, 50);
  r.step();
  EXPECT_EQ(r.scheduler.prefix_cache().ref_count(0), 1u);
  EXPECT_TRUE(r.scheduler.cancel(b));
  EXPECT_EQ(r.scheduler.prefix_cache().ref_count(0), 0u);
  EXPECT_EQ(r.scheduler.allocator().used_count(), 2u);
  EXPECT_EQ(r.scheduler.schedule().freed_pages, std::vector<PageId>{2});
  EXPECT_EQ(r.scheduler.flush_prefix_cache(), 2u);
  EXPECT_EQ(r.scheduler.allocator().used_count(), 0u);
}

// Random traffic over a few shared prefixes with cancellations and preemptions: every used page
// is in a block table or idle in the cache, a cached page's count equals the tables holding it,
// a private page is in one table only, and a flush at the end returns every page.
TEST(PrefixCache, RandomTrafficKeepsCountsExactAndLeaksNothing) {
  const SchedulerConfig c = cached_config(12, 96);
  Scheduler s(c);
  std::mt19937_64 rng(11);
  std::vector<std::vector<int32_t>> prefixes;
  for (int i = 0; i < 3; ++i) prefixes.push_back(tokens(384, i + 20));
  std::map<RequestId, size_t> left;
  RequestId next = 1;
  for (int step = 0; step < 20000 && (step < 2000 || s.has_work()); ++step) {
    if (step < 2000 && rng() % 25 == 0) {
      const RequestId id = next++;
      std::vector<int32_t> p = prefixes[rng() % prefixes.size()];
      p.resize(1 + rng() % 380);
      const std::vector<int32_t> tail = tokens(rng() % 100, static_cast<int32_t>(id));
      p.insert(p.end(), tail.begin(), tail.end());
      ASSERT_TRUE(s.add(id, p));
      left[id] = 1 + rng() % 150;
    }
    if (step < 2000 && rng() % 40 == 0 && !left.empty()) {
      auto it = std::next(left.begin(), static_cast<long>(rng() % left.size()));
      EXPECT_TRUE(s.cancel(it->first));
      left.erase(it);
    }
    const StepPlan plan = s.schedule();
    EXPECT_LE(plan.token_count(), c.max_batch_tokens);
    StepOutput out;
    for (const ScheduledSequence& q : plan.sequences) {
      EXPECT_LT(q.first_position, q.first_position + q.tokens.size());
      if (q.samples) out.sampled.push_back({q.id, 1, --left[q.id] == 0});
    }
    s.update(plan, out);
    for (const SampledToken& t : out.sampled)
      if (t.finished) left.erase(t.id);
    std::map<PageId, uint32_t> holders;
    for (auto& [id, n] : left)
      for (PageId p : s.pages_of(id)) ++holders[p];
    const PrefixCache& cache = s.prefix_cache();
    for (auto& [p, n] : holders) {
      if (cache.contains(p)) {
        EXPECT_EQ(cache.ref_count(p), n) << "page " << p;
      } else {
        EXPECT_EQ(n, 1u) << "private page " << p << " in two block tables";
      }
    }
    ASSERT_EQ(holders.size() + cache.evictable(), s.allocator().used_count()) << "step " << step;
  }
  EXPECT_FALSE(s.has_work());
  EXPECT_GT(s.stats().prefix_hits, 0u);
  EXPECT_GT(s.stats().prefix_evictions, 0u);
  s.flush_prefix_cache();
  EXPECT_EQ(s.allocator().used_count(), 0u);
}

}  // namespace
}  // namespace v4
