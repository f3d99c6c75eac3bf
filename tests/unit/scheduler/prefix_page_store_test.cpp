// The scheduler's side of a PrefixPageStore: evicted cached pages are announced with their place
// in the hash chain, and a lookup that misses in memory continues in the store, giving each found
// page a fresh id the plan tells the worker to fill. The store here is an in-memory table of the
// pages the scheduler spilled (the real one, on disk, has its own tests); the expected hashes are
// recomputed with PrefixCache::chain_hash from the prompt tokens.
#include <gtest/gtest.h>

#include <map>

#include "scheduler/scheduler.h"

namespace v4 {
namespace {

class TableStore final : public PrefixPageStore {
 public:
  bool find(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens,
            uint64_t end) override {
    ends.push_back(end);
    ++lookups;
    auto it = pages.find(hash);
    return it != pages.end() && it->second.parent == parent &&
           std::equal(tokens.begin(), tokens.end(), it->second.tokens.begin(),
                      it->second.tokens.end());
  }
  void keep(const StepPlan& plan) {
    for (const PageSpill& s : plan.spilled_pages) pages[s.key.hash] = s.key;
  }
  std::map<uint64_t, PrefixPageKey> pages;
  int lookups = 0;
  std::vector<uint64_t> ends;  // the positions asked for, in order
};

constexpr uint32_t kPage = 128;

std::vector<int32_t> prompt(size_t n, int32_t seed) {
  std::vector<int32_t> t;
  for (size_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>((i * 31 + seed * 7) % 1000));
  return t;
}

// Runs requests to completion (one sampled token each), handing every plan's spills to `store`.
void run(Scheduler& s, TableStore& store, RequestId id, std::vector<int32_t> tokens,
         std::vector<StepPlan>* plans = nullptr) {
  ASSERT_TRUE(s.add(id, std::move(tokens)));
  for (int i = 0; s.has_work() && i < 100; ++i) {
    StepPlan plan = s.schedule();
    store.keep(plan);
    StepOutput out;
    for (const ScheduledSequence& q : plan.sequences)
      if (q.samples) out.sampled.push_back({q.id, 1, true});
    s.update(plan, out);
    if (plans) plans->push_back(std::move(plan));
  }
}

SchedulerConfig config(uint32_t pages) {
  SchedulerConfig c;
  c.page_tokens = kPage;
  c.total_pages = pages;
  c.max_batch_tokens = 512;
  c.prefix_caching = true;
  return c;
}

TEST(PrefixPageStore, EvictedPagesAreSpilledWithTheirChainKeys) {
  Scheduler s(config(3));
  TableStore store;
  s.set_page_store(&store);
  const std::vector<int32_t> a = prompt(2 * kPage + 10, 1);
  run(s, store, 1, a);
  std::vector<StepPlan> plans;
  run(s, store, 2, prompt(2 * kPage + 10, 2), &plans);
  // b needs three pages; one is free, so a's two cached pages are evicted (tail first) and spilled.
  ASSERT_EQ(store.pages.size(), 2u);
  const uint64_t h0 = PrefixCache::chain_hash(0, {a.data(), kPage});
  const uint64_t h1 = PrefixCache::chain_hash(h0, {a.data() + kPage, kPage});
  ASSERT_TRUE(store.pages.count(h0) && store.pages.count(h1));
  EXPECT_EQ(store.pages[h1].parent, h0);
  EXPECT_EQ(store.pages[h0].parent, 0u);
  EXPECT_EQ(store.pages[h1].tokens, std::vector<int32_t>(a.begin() + kPage, a.begin() + 2 * kPage));
  // Every evicted page is spilled, in the same plan and order.
  size_t evicted = 0;
  for (const StepPlan& plan : plans) {
    ASSERT_EQ(plan.evicted_pages.size(), plan.spilled_pages.size());
    for (size_t i = 0; i < plan.spilled_pages.size(); ++i)
      EXPECT_EQ(plan.spilled_pages[i].page, plan.evicted_pages[i]);
    evicted += plan.evicted_pages.size();
  }
  EXPECT_EQ(evicted, 2u);
}

TEST(PrefixPageStore, LookupContinuesInTheStoreAndLoadsIntoFreshPages) {
  Scheduler s(config(3));
  TableStore store;
  s.set_page_store(&store);
  std::vector<int32_t> a = prompt(2 * kPage + 10, 1);
  run(s, store, 1, a);
  run(s, store, 2, prompt(2 * kPage + 10, 2));  // evicts a's pages to the store
  std::vector<int32_t> again(a.begin(), a.begin() + 2 * kPage);
  again.push_back(5);
  store.ends.clear();
  ASSERT_TRUE(s.add(3, again));
  const StepPlan plan = s.schedule();
  ASSERT_EQ(plan.sequences.size(), 1u);
  const ScheduledSequence& q = plan.sequences[0];
  EXPECT_EQ(q.first_position, 2 * kPage);
  EXPECT_EQ(q.cached_tokens.size(), 2 * kPage);
  ASSERT_EQ(plan.loaded_pages.size(), 2u);
  EXPECT_EQ(plan.loaded_pages[0].page, q.pages[0]);
  EXPECT_EQ(plan.loaded_pages[1].page, q.pages[1]);
  EXPECT_EQ(plan.loaded_pages[0].hash, PrefixCache::chain_hash(0, {a.data(), kPage}));
  EXPECT_EQ(store.ends, (std::vector<uint64_t>{kPage, 2 * kPage}));
  // b's cached pages made room; they were spilled in this same plan.
  EXPECT_EQ(plan.spilled_pages.size(), 2u);
  EXPECT_EQ(s.stats().prefix_store_hits, 2u);
  EXPECT_EQ(s.stats().prefix_hits, 2u);
  // The loaded pages are now cached in memory: a fourth request finds them there.
  StepOutput out{{{3, 1, true}}, {}};
  s.update(plan, out);
  const int before = store.lookups;
  ASSERT_TRUE(s.add(4, again));
  const StepPlan next = s.schedule();
  EXPECT_TRUE(next.loaded_pages.empty());
  EXPECT_EQ(store.lookups, before);
  EXPECT_EQ(s.stats().prefix_hits, 4u);
}

// Stored pages need page ids like new rows: with fewer available than loads plus the chunk, the
// request waits (and takes none), and is admitted once a running request leaves.
TEST(PrefixPageStore, LoadsWaitForPageIdsLikeNewRows) {
  Scheduler s(config(3));
  TableStore store;
  s.set_page_store(&store);
  const std::vector<int32_t> a = prompt(2 * kPage + 10, 1);
  run(s, store, 1, a);
  run(s, store, 2, prompt(2 * kPage + 10, 2));  // a's pages now in the store, b's cached
  ASSERT_TRUE(s.add(3, prompt(10, 3)));         // holds the free page while it decodes
  StepPlan plan = s.schedule();
  s.update(plan, {{{3, 1, false}}, {}});
  std::vector<int32_t> again(a.begin(), a.begin() + 2 * kPage);
  again.push_back(5);
  ASSERT_TRUE(s.add(4, again));
  plan = s.schedule();  // two loads and one new page, two ids available
  ASSERT_EQ(plan.sequences.size(), 1u);
  EXPECT_EQ(plan.sequences[0].id, 3u);
  EXPECT_TRUE(plan.loaded_pages.empty());
  s.update(plan, {{{3, 1, true}}, {}});
  plan = s.schedule();
  ASSERT_EQ(plan.sequences.size(), 1u);
  EXPECT_EQ(plan.sequences[0].id, 4u);
  EXPECT_EQ(plan.loaded_pages.size(), 2u);
  EXPECT_EQ(s.stats().prefix_store_hits, 2u);
}

// The store is asked only past the pages found in memory, and a page it lacks ends the chain.
TEST(PrefixPageStore, StoreMissEndsTheChain) {
  Scheduler s(config(8));
  TableStore store;
  s.set_page_store(&store);
  std::vector<int32_t> p = prompt(3 * kPage + 1, 3);
  ASSERT_TRUE(s.add(1, p));
  const StepPlan plan = s.schedule();
  EXPECT_TRUE(plan.loaded_pages.empty());
  EXPECT_EQ(store.lookups, 1);  // page 0 missed in memory and in the store: no further lookups
  EXPECT_EQ(s.stats().prefix_misses, 3u);
}

TEST(PrefixPageStore, FlushSpillsAndTakePageChangesHandsThemOver) {
  Scheduler s(config(8));
  TableStore store;
  s.set_page_store(&store);
  run(s, store, 1, prompt(2 * kPage + 10, 1));
  EXPECT_EQ(s.flush_prefix_cache(), 2u);
  const StepPlan changes = s.take_page_changes();
  EXPECT_TRUE(changes.sequences.empty());
  EXPECT_EQ(changes.spilled_pages.size(), 2u);
  EXPECT_EQ(changes.evicted_pages.size(), 2u);
  EXPECT_TRUE(s.take_page_changes().spilled_pages.empty());
  EXPECT_EQ(s.allocator().used_count(), 0u);
}

TEST(PrefixPageStore, WithoutAStoreNothingIsSpilled) {
  Scheduler s(config(3));
  TableStore unused;
  run(s, unused, 1, prompt(2 * kPage + 10, 1));
  std::vector<StepPlan> plans;
  run(s, unused, 2, prompt(2 * kPage + 10, 2), &plans);
  size_t evicted = 0;
  for (const StepPlan& plan : plans) {
    evicted += plan.evicted_pages.size();
    EXPECT_TRUE(plan.spilled_pages.empty());
  }
  EXPECT_EQ(evicted, 2u);
  EXPECT_TRUE(unused.pages.empty());
}

}  // namespace
}  // namespace v4
