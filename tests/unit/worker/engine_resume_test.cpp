// Resumable requests (docs/design.md): a request resubmitted as (prompt + the tokens already
// sent, resumed_tokens = their count) continues with exactly the tokens and logprobs of the
// uninterrupted run, for greedy and seeded sampling, with penalties and in a busy batch.
#include "tests/unit/worker/tiny_engine_fixture.h"

namespace v4 {
namespace {

GenerationRequest resumed_after(const GenerationRequest& r, const std::vector<int32_t>& sent) {
  GenerationRequest c = r;
  c.prompt.insert(c.prompt.end(), sent.begin(), sent.end());
  c.resumed_tokens = static_cast<uint32_t>(sent.size());
  return c;
}

TEST_F(EngineTest, ResumingMidStreamGivesTheSameContinuation) {
  std::vector<GenerationRequest> rs = mixed_requests(8, true);
  rs[1].sampling.temperature = 0.0f;  // greedy
  rs[2].sampling.presence_penalty = 0.7f;
  rs[2].sampling.frequency_penalty = 0.4f;
  rs[3].sampling.repetition_penalty = 1.3f;
  for (GenerationRequest& r : rs) r.sampling.max_tokens = 12;
  const Streams whole = run(options(), rs);
  // Resume each request after a different number of tokens, all in one engine together with
  // the untouched originals, so the continuations share steps with other requests.
  std::vector<GenerationRequest> mixed = rs;
  for (size_t i = 0; i < rs.size(); ++i) {
    const std::vector<int32_t> all = tokens_of(whole.at(i + 1));
    const size_t cut = 1 + i % 10;
    mixed.push_back(resumed_after(rs[i], {all.begin(), all.begin() + cut}));
  }
  const Streams resumed = run(options(), mixed);
  for (size_t i = 0; i < rs.size(); ++i) {
    const std::vector<GenerationEvent>& a = whole.at(i + 1);
    const std::vector<GenerationEvent>& b = resumed.at(rs.size() + i + 1);
    const size_t cut = 1 + i % 10;
    ASSERT_EQ(b.size(), a.size() - cut) << "request " << i;
    for (size_t k = 0; k < b.size(); ++k) {
      EXPECT_EQ(b[k].token, a[cut + k].token) << "request " << i << " token " << cut + k;
      EXPECT_EQ(b[k].logprob, a[cut + k].logprob) << "request " << i << " token " << cut + k;
    }
    EXPECT_EQ(b.back().finish, a.back().finish);
  }
}

TEST_F(EngineTest, ResumedRequestsAreValidated) {
  CpuBackend backend(1);
  EngineCore core(weights(), backend, options());
  GenerationRequest r;
  r.prompt = prompt(4, 1);
  r.sampling.max_tokens = 3;
  r.resumed_tokens = 3;  // all of max_tokens already sent
  EXPECT_FALSE(core.validate(r));
  r.resumed_tokens = 4;  // no prompt before the output
  EXPECT_FALSE(core.validate(r));
  r.resumed_tokens = 2;
  EXPECT_TRUE(core.validate(r));
  r.sampling.prompt_logprobs = 1;
  EXPECT_FALSE(core.validate(r));
}

}  // namespace
}  // namespace v4
