// Routing: prefix affinity keeps a conversation on the worker holding its pages unless that
// worker is overloaded; power of two choices otherwise; never an unusable worker. The last
// test replays multi-turn conversations and compares prefix hits with round-robin.
#include "router/grpc/routing_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>

namespace v4::router_grpc {
namespace {

std::vector<int32_t> tokens(size_t n, uint32_t seed) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 7919 + seed * 104729) % 50000);
  return t;
}

std::vector<WorkerLoad> idle(size_t n) {
  std::vector<WorkerLoad> w(n);
  for (WorkerLoad& l : w) l.usable = true;
  return w;
}

RoutingOptions small_pages() {
  RoutingOptions o;
  o.page_tokens = 16;
  return o;
}

TEST(PageHashChain, CoversFullPagesOnlyAndSharesPrefixes) {
  std::vector<int32_t> a = tokens(40, 1);
  std::vector<int32_t> b = a;
  b[35] += 1;  // differs in the partial third page only
  b.push_back(7);
  EXPECT_EQ(page_hash_chain(a, 16).size(), 2u);
  EXPECT_EQ(page_hash_chain(a, 16), page_hash_chain(b, 16));
  b[20] += 1;  // differs in the second page
  EXPECT_EQ(page_hash_chain(a, 16)[0], page_hash_chain(b, 16)[0]);
  EXPECT_NE(page_hash_chain(a, 16)[1], page_hash_chain(b, 16)[1]);
  EXPECT_TRUE(page_hash_chain(tokens(15, 1), 16).empty());
}

TEST(RoutingPolicy, FollowUpTurnLandsWhereItsPagesAre) {
  RoutingPolicy policy(small_pages());
  std::vector<WorkerLoad> w = idle(4);
  std::vector<int32_t> turn = tokens(40, 3);
  auto first = policy.pick(turn, w);
  ASSERT_TRUE(first);
  // Load the other workers more lightly than this one, within the balance bound.
  for (size_t i = 0; i < w.size(); ++i) w[i].outstanding = i == first->worker ? 500 : 100;
  std::vector<int32_t> next = turn;
  next.insert(next.end(), {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17});
  auto second = policy.pick(next, w);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->worker, first->worker);
  EXPECT_EQ(second->affinity_pages, 2u);
}

TEST(RoutingPolicy, OverloadedAffinityWorkerIsPassedOver) {
  RoutingOptions o = small_pages();
  o.balance_abs = 100;
  o.balance_rel = 1.5;
  RoutingPolicy policy(o);
  std::vector<WorkerLoad> w = idle(2);
  std::vector<int32_t> turn = tokens(40, 5);
  auto first = policy.pick(turn, w);
  ASSERT_TRUE(first);
  w[first->worker].outstanding = 1000;  // > 1.5 × 200 + 100
  w[1 - first->worker].outstanding = 200;
  auto second = policy.pick(turn, w);
  ASSERT_TRUE(second);
  EXPECT_NE(second->worker, first->worker);
  // Within the bound it stays: 1000 <= 1.5 × 700 + 100.
  w[1 - first->worker].outstanding = 700;
  w[first->worker].outstanding = 1000;
  auto third = policy.pick(turn, w);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->worker, second->worker) << "the last choice owns the pages now";
}

TEST(RoutingPolicy, WorkerWithoutFreePagesForTheRestIsPassedOver) {
  RoutingPolicy policy(small_pages());
  std::vector<WorkerLoad> w = idle(2);
  std::vector<int32_t> turn = tokens(40, 6);
  auto first = policy.pick(turn, w);
  std::vector<int32_t> longer = tokens(40, 6);
  longer.resize(200, 9);  // 160 tokens beyond the cached 32
  w[first->worker].pages_known = true;
  w[first->worker].pages_free = 2;   // 32 tokens
  w[first->worker].outstanding = 2;  // so that power of two choices picks the other
  w[1 - first->worker].outstanding = 1;
  auto second = policy.pick(longer, w);
  ASSERT_TRUE(second);
  EXPECT_NE(second->worker, first->worker);
}

TEST(RoutingPolicy, NeverPicksAnUnusableWorker) {
  for (RoutingMode mode :
       {RoutingMode::kAffinity, RoutingMode::kPowerOfTwo, RoutingMode::kRoundRobin}) {
    RoutingOptions o = small_pages();
    o.mode = mode;
    RoutingPolicy policy(o);
    std::vector<WorkerLoad> w = idle(3);
    w[0].usable = false;
    w[2].usable = false;
    for (uint32_t i = 0; i < 50; ++i) {
      auto c = policy.pick(tokens(20 + i, i), w);
      ASSERT_TRUE(c);
      EXPECT_EQ(c->worker, 1u);
    }
    w[1].usable = false;
    EXPECT_FALSE(policy.pick(tokens(20, 1), w));
  }
}

TEST(RoutingPolicy, PowerOfTwoPrefersTheLessLoaded) {
  RoutingOptions o = small_pages();
  o.mode = RoutingMode::kPowerOfTwo;
  RoutingPolicy policy(o);
  std::vector<WorkerLoad> w = idle(2);
  w[0].outstanding = 10;
  w[1].outstanding = 5;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(policy.pick(tokens(8, 1), w)->worker, 1u);
  // Over many workers the most loaded one is never picked (it loses to any other).
  std::vector<WorkerLoad> many = idle(5);
  for (size_t i = 0; i < many.size(); ++i) many[i].outstanding = i == 3 ? 1000 : i;
  for (int i = 0; i < 200; ++i) EXPECT_NE(policy.pick(tokens(8, 1), many)->worker, 3u);
}

TEST(RoutingPolicy, ForgottenWorkerLosesItsAffinity) {
  RoutingPolicy policy(small_pages());
  std::vector<WorkerLoad> w = idle(2);
  std::vector<int32_t> turn = tokens(40, 8);
  auto first = policy.pick(turn, w);
  policy.forget(first->worker);
  w[first->worker].outstanding = 50;  // p2c now prefers the other
  auto second = policy.pick(turn, w);
  EXPECT_EQ(second->affinity_pages, 0u);
  EXPECT_NE(second->worker, first->worker);
}

// Replays agent sessions: each turn's prompt is the previous prompt, the previous answer and a
// new user message. A worker "has" a page if it computed it before (unbounded cache), as the
// engine's prefix cache would on an idle worker. Hits are counted in full pages.
struct Replay {
  uint64_t hits = 0, lookups = 0;
};

Replay replay(RoutingMode mode, size_t workers) {
  RoutingOptions o;
  o.mode = mode;
  o.page_tokens = 64;
  RoutingPolicy policy(o);
  std::vector<std::set<uint64_t>> cached(workers);
  std::vector<WorkerLoad> load = idle(workers);
  std::mt19937_64 rng(11);
  constexpr size_t kSessions = 48, kTurns = 8;
  std::vector<std::vector<int32_t>> prompt(kSessions);
  for (size_t s = 0; s < kSessions; ++s) {
    prompt[s] = tokens(200 + rng() % 300, static_cast<uint32_t>(s) + 1000);  // system + tools
  }
  Replay r;
  std::vector<size_t> order(kSessions);
  for (size_t s = 0; s < kSessions; ++s) order[s] = s;
  for (size_t turn = 0; turn < kTurns; ++turn) {
    // Sessions interleave in no fixed order (users think for different times).
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t s : order) {
      std::vector<int32_t>& p = prompt[s];
      for (size_t i = 0, n = 30 + rng() % 200; i < n; ++i)
        p.push_back(static_cast<int32_t>(rng() % 50000));
      // Load as a busy router sees it: each worker holds some outstanding tokens.
      for (WorkerLoad& l : load) l.outstanding = rng() % 2000;
      const size_t w = policy.pick(p, load)->worker;
      for (uint64_t h : page_hash_chain(p, o.page_tokens)) {
        ++r.lookups;
        r.hits += !cached[w].insert(h).second;
      }
    }
  }
  return r;
}

TEST(RoutingPolicy, ReplayedAgentSessionsKeepTheirPrefixHits) {
  const Replay one = replay(RoutingMode::kRoundRobin, 1);
  const Replay affinity = replay(RoutingMode::kAffinity, 4);
  const Replay round_robin = replay(RoutingMode::kRoundRobin, 4);
  auto ratio = [](const Replay& r) {
    return static_cast<double>(r.hits) / static_cast<double>(r.lookups);
  };
  std::printf(
      "prefix page hit rate, 48 sessions x 8 turns: one worker %.3f, 4 workers with "
      "affinity %.3f, 4 workers round-robin %.3f\n",
      ratio(one), ratio(affinity), ratio(round_robin));
  // The goal (docs/design.md, routing): at least 90% of the hits one worker would get.
  EXPECT_GE(static_cast<double>(affinity.hits), 0.9 * static_cast<double>(one.hits));
  EXPECT_LT(ratio(round_robin), ratio(affinity));
}

}  // namespace
}  // namespace v4::router_grpc
