// The host executor's two promises beyond running the device ops' indices: it visits them in the
// order it is told (the check for GPU races, kernels/device/host_exec.h), and it refuses, as a GPU
// would, a team over kernels/device/team_limits.h's limits.
#include "kernels/device/host_exec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/device/team_limits.h"

namespace v4::kernels {
namespace {

// The indices for_each, warp_sums and a team's phases visit, in the order visited.
struct Visits {
  std::vector<int64_t> indices, lanes_of_0, threads_of_team_1;
};

Visits visits(HostOrder order) {
  HostExec exec(order);
  Visits v;
  exec.for_each(5, [&](int64_t i) { v.indices.push_back(i); });
  exec.warp_sums<1>(
      2,
      [&](int64_t i, int lane, float(&acc)[1]) {
        if (i == 0) v.lanes_of_0.push_back(lane);
        acc[0] = 1.0f;
      },
      [](int64_t, const float(&)[1]) {});
  exec.for_each_team(2, 4, 0, [&](int64_t i, const HostTeam& team) {
    team.threads([&](int l) {
      if (i == 1) v.threads_of_team_1.push_back(l);
    });
  });
  EXPECT_TRUE(exec.sync());
  return v;
}

TEST(HostExec, VisitsInTheOrderItIsTold) {
  const Visits up = visits(HostOrder::kAscending), down = visits(HostOrder::kDescending);
  EXPECT_EQ(up.indices, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(down.indices, (std::vector<int64_t>{4, 3, 2, 1, 0}));
  ASSERT_EQ(up.lanes_of_0.size(), 32u);
  EXPECT_EQ(up.lanes_of_0.front(), 0);
  EXPECT_EQ(down.lanes_of_0.front(), 31);
  EXPECT_EQ(up.threads_of_team_1, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(down.threads_of_team_1, (std::vector<int64_t>{3, 2, 1, 0}));
}

TEST(HostExec, WarpSumsAreTheSameInEitherOrder) {
  for (HostOrder order : {HostOrder::kAscending, HostOrder::kDescending}) {
    HostExec exec(order);
    float got = 0.0f;
    exec.warp_sums<1>(
        1, [](int64_t, int lane, float(&acc)[1]) { acc[0] = 1.0f / static_cast<float>(lane + 3); },
        [&](int64_t, const float(&sum)[1]) { got = sum[0]; });
    float want[kWarpLanes][1];
    for (int l = 0; l < kWarpLanes; ++l) want[l][0] = 1.0f / static_cast<float>(l + 3);
    warp_butterfly_sum<1, float>(want);
    EXPECT_EQ(got, want[0][0]);
  }
}

TEST(HostExec, RefusesATeamOverTheLimitsAsAGpuWould) {
  const struct {
    int size;
    size_t shared;
  } over[] = {{kMaxTeamThreads + 1, 0}, {0, 0}, {32, kMaxTeamSharedBytes + 1}};
  for (const auto& o : over) {
    HostExec exec;
    bool ran = false;
    exec.for_each_team(1, o.size, o.shared, [&](int64_t, const HostTeam&) { ran = true; });
    EXPECT_FALSE(ran) << o.size << " threads, " << o.shared << " bytes";
    const Status s = exec.sync();
    ASSERT_FALSE(s);
    EXPECT_NE(s.message().find("over the limits"), std::string::npos) << s.message();
    float x = 0.0f, y = 1.0f;
    EXPECT_FALSE(exec.copy_out(&x, &y, sizeof x)) << "copy_out reports it as well";
  }
  HostExec exec;
  bool ran = false;
  exec.for_each_team(1, kMaxTeamThreads, kMaxTeamSharedBytes,
                     [&](int64_t, const HostTeam& team) { ran = team.size() == kMaxTeamThreads; });
  EXPECT_TRUE(ran);
  EXPECT_TRUE(exec.sync());
}

}  // namespace
}  // namespace v4::kernels
