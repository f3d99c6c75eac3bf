// Batch invariance of the engine (design invariant 1): 32 requests of mixed lengths, chunked
// prefill interleaved with decodes, give exactly the tokens and logprobs each gives alone.
#include "tests/unit/worker/tiny_engine_fixture.h"

namespace v4 {
namespace {

TEST_F(EngineTest, GreedyTokensAreTheSameAloneAndIn32WayContinuousBatch) {
  expect_batch_invariant(false);
}

TEST_F(EngineTest, SeededSamplingIsTheSameAloneAndIn32WayContinuousBatch) {
  expect_batch_invariant(true);
}

}  // namespace
}  // namespace v4
