// Expert placement: contiguous shards cover every expert once; balanced placement (EPLB-style)
// keeps every expert, respects the slots per rank, never does worse than contiguous shards on
// the load it was built from and does much better on a skewed one, puts the hottest experts on
// several ranks, and is the same table on every rank (digest). Trace files are read from the
// Prometheus text the router serves, with bad ones refused by line.
#include "worker/ep/expert_placement.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

namespace v4 {
namespace {

TEST(ExpertPlacementTest, ContiguousShardsCoverEveryExpertOnce) {
  for (int ranks : {1, 2, 3, 5, 8}) {
    const ExpertPlacement p = ExpertPlacement::contiguous(8, ranks);
    std::vector<int> per_rank(ranks, 0);
    int last = 0;
    for (int32_t e = 0; e < 8; ++e) {
      ASSERT_EQ(p.replicas(3, e).size(), 1u);
      const int r = p.owner(3, e, 0);
      EXPECT_GE(r, last) << "shards are contiguous";
      last = r;
      ++per_rank[r];
      EXPECT_TRUE(p.holds(r, 0, e));
      EXPECT_EQ(p.owner(0, e, ranks - 1), r) << "the sender does not matter";
    }
    const auto [lo, hi] = std::minmax_element(per_rank.begin(), per_rank.end());
    EXPECT_LE(*hi - *lo, 1);
    EXPECT_FALSE(p.holds(0, 0, 8));
    EXPECT_FALSE(p.holds(0, 0, -1));
  }
}

ExpertLoad skewed(uint32_t layers, uint32_t experts) {
  ExpertLoad load(layers, std::vector<uint64_t>(experts));
  for (uint32_t l = 0; l < layers; ++l)
    for (uint32_t e = 0; e < experts; ++e)
      load[l][e] = (e + l) % experts < 4 ? 1000 : 10 + (e * 13 + l) % 17;  // 4 hot experts
  return load;
}

TEST(ExpertPlacementTest, BalancedKeepsEveryExpertAndBeatsContiguousOnSkewedLoad) {
  const uint32_t layers = 3, experts = 32;
  const ExpertLoad load = skewed(layers, experts);
  for (int ranks : {2, 4, 8}) {
    for (uint32_t redundant : {0u, 1u, 2u}) {
      Result<ExpertPlacement> b = ExpertPlacement::balanced(load, ranks, redundant);
      ASSERT_TRUE(b) << b.message();
      const uint32_t slots = (experts + ranks - 1) / ranks + redundant;
      for (uint32_t l = 0; l < layers; ++l) {
        std::vector<uint32_t> used(ranks, 0);
        for (uint32_t e = 0; e < experts; ++e) {
          const auto holders = b->replicas(l, static_cast<int32_t>(e));
          ASSERT_FALSE(holders.empty()) << "expert " << e << " lost";
          EXPECT_EQ(std::set<int32_t>(holders.begin(), holders.end()).size(), holders.size());
          for (int32_t r : holders) ++used[r];
          // A sender holding a replica keeps its rows; others go to a replica.
          for (int s = 0; s < ranks; ++s) {
            const int o = b->owner(l, static_cast<int32_t>(e), s);
            EXPECT_TRUE(b->holds(o, l, static_cast<int32_t>(e)));
            if (b->holds(s, l, static_cast<int32_t>(e))) {
              EXPECT_EQ(o, s);
            }
          }
        }
        for (uint32_t u : used) EXPECT_LE(u, slots);
      }
      const std::vector<double> bal = b->imbalance(load);
      const std::vector<double> con = ExpertPlacement::contiguous(experts, ranks).imbalance(load);
      for (uint32_t l = 0; l < layers; ++l) {
        EXPECT_LE(bal[l], con[l] + 1e-9) << ranks << " ranks, layer " << l;
        if (redundant > 0 && ranks >= 4) {
          EXPECT_LT(bal[l], 1.35) << ranks << " ranks";
        }
      }
      if (redundant > 0) {
        EXPECT_GT(b->replicas(0, 0).size(), 1u) << "the hottest expert has copies";
      }
      // Deterministic: every rank builds the same table from the same trace.
      EXPECT_EQ(b->digest(), ExpertPlacement::balanced(load, ranks, redundant)->digest());
      EXPECT_NE(b->digest(), ExpertPlacement::contiguous(experts, ranks).digest());
    }
  }
  EXPECT_FALSE(ExpertPlacement::balanced({}, 2, 0));
  EXPECT_FALSE(ExpertPlacement::balanced({{1, 2}, {1}}, 2, 0));
}

TEST(ExpertPlacementTest, HotSetIsTheFewestExpertsCoveringTheShare) {
  const ExpertLoad load = {{50, 30, 10, 5, 5}, {20, 20, 20, 20, 20}, {0, 0, 0, 0, 0}};
  EXPECT_EQ(hot_set_sizes(load, 0.8), (std::vector<uint32_t>{2, 4, 0}));
  EXPECT_EQ(hot_set_sizes(load, 0.9), (std::vector<uint32_t>{3, 5, 0}));
}

class ExpertLoadFileTest : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    path_ = std::filesystem::temp_directory_path() /
            ("v4-expert-load-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::ofstream(path_) << text;
    return path_.string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::filesystem::path path_;
};

TEST_F(ExpertLoadFileTest, ReadsTheRoutersExpertDetailSeries) {
  const std::string f = write(
      "# HELP v4serve:expert_selections_total Routed-expert selections\n"
      "# TYPE v4serve:expert_selections_total counter\n"
      "v4serve:expert_selections_total{expert=\"1\",layer=\"0\",model_name=\"m\"} 7\n"
      "v4serve:expert_selections_total{expert=\"2\",layer=\"1\",model_name=\"m\"} 3e2\n"
      "v4serve:num_requests_running{model_name=\"m\"} 4\n");
  Result<ExpertLoad> load = read_expert_load(f, 2, 3);
  ASSERT_TRUE(load) << load.message();
  EXPECT_EQ(*load, (ExpertLoad{{0, 7, 0}, {0, 0, 300}}));
}

TEST_F(ExpertLoadFileTest, RefusesSamplesOutsideTheModelAndEmptyDumps) {
  Result<ExpertLoad> outside = read_expert_load(
      write("v4serve:expert_selections_total{expert=\"9\",layer=\"0\"} 1\n"), 2, 3);
  ASSERT_FALSE(outside);
  EXPECT_NE(outside.message().find("line 1"), std::string::npos) << outside.message();
  Result<ExpertLoad> empty = read_expert_load(write("v4serve:other 1\n"), 2, 3);
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.message().find("--metrics-expert-detail"), std::string::npos);
  EXPECT_FALSE(read_expert_load("/nonexistent/stats.prom", 2, 3));
  EXPECT_FALSE(read_expert_load(write("v4serve:expert_selections_total{layer=\"0\"} 1\n"), 2, 3));
}

}  // namespace
}  // namespace v4
