// The device's top-k row choice of the lightning indexer (spec §3.4.4) against the rule the CPU
// backend follows — the top_k largest order keys, ties to the lower index, ascending — on the
// host executor, for teams smaller and larger than the keys (so that runs of several keys per
// thread and runs that split a tie meet), with every key equal, keys from a tiny alphabet (ties
// everywhere), distinct keys, and tokens that see at most top_k rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/device/host_exec.h"
#include "model/backend/device/device_ops_attention.h"

namespace v4 {
namespace {

std::vector<uint32_t> reference(const std::vector<uint32_t>& key, uint64_t visible,
                                uint32_t top_k) {
  std::vector<uint32_t> idx(visible);
  std::iota(idx.begin(), idx.end(), 0u);
  if (visible <= top_k) return idx;
  std::stable_sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) { return key[a] > key[b]; });
  idx.resize(top_k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

TEST(IndexerSelect, ChoosesTheTopKWithLowIndexTiesForAnyTeam) {
  constexpr uint32_t kTopK = 37;
  // Positions give visible = (p + 1) / 4 keys: none, at most top_k, and several above it.
  const std::vector<uint64_t> positions = {2, 4 * kTopK - 1, 4 * kTopK + 3, 803, 4003};
  const int64_t keys = 1001;
  std::mt19937 rng(7);
  for (int pattern = 0; pattern < 3; ++pattern) {
    std::vector<uint32_t> order(positions.size() * keys);
    for (uint32_t& k : order) {
      k = pattern == 0   ? 5u
          : pattern == 1 ? static_cast<uint32_t>(rng() % 3)
                         : static_cast<uint32_t>(rng());
    }
    for (int team : {1, 3, 32, 100, 512}) {
      SCOPED_TRACE(testing::Message() << "pattern " << pattern << ", team " << team);
      KvStep st;
      st.positions = positions.data();
      st.n_tokens = static_cast<int64_t>(positions.size());
      st.position_end = positions.back() + 1;
      std::vector<uint32_t> chosen(positions.size() * kTopK, ~0u), count(positions.size(), ~0u);
      kernels::HostExec exec;
      device::indexer_select(exec, st, kTopK, keys, order.data(), chosen.data(), count.data(),
                             team);
      for (size_t t = 0; t < positions.size(); ++t) {
        const uint64_t visible = (positions[t] + 1) / 4;
        const std::vector<uint32_t> want(reference(
            std::vector<uint32_t>(order.begin() + t * keys, order.begin() + (t + 1) * keys),
            visible, kTopK));
        ASSERT_EQ(count[t], want.size()) << "token " << t;
        EXPECT_TRUE(std::equal(want.begin(), want.end(), chosen.begin() + t * kTopK))
            << "token " << t;
      }
    }
  }
}

}  // namespace
}  // namespace v4
