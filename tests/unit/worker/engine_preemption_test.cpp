// Preemption by recompute is exact: a page budget that forces preemptions yields the tokens of
// an unconstrained run, and every page comes back.
#include "tests/unit/worker/tiny_engine_fixture.h"

namespace v4 {
namespace {

TEST_F(EngineTest, PreemptionByRecomputeGivesTheUnconstrainedTokens) {
  std::vector<GenerationRequest> rs = mixed_requests(6, true);
  for (GenerationRequest& r : rs) {
    r.prompt = prompt(100 + r.prompt.size() % 30, static_cast<uint32_t>(r.prompt.size()));
    r.sampling.max_tokens = 30;  // every request crosses a 128-token page boundary
  }
  const Streams free_run = run(options(), rs);
  EngineOptions tight = options();
  tight.total_pages = 4;  // 6 requests needing 2 pages each at the end
  EngineStats stats;
  const Streams constrained = run(tight, rs, &stats);
  EXPECT_GT(stats.preemptions, 0u);
  for (size_t i = 1; i <= rs.size(); ++i) {
    EXPECT_EQ(tokens_of(free_run.at(i)), tokens_of(constrained.at(i))) << "request " << i;
  }
}

}  // namespace
}  // namespace v4
