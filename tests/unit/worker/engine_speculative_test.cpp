// Speculative decoding (docs/design.md): drafts verified in one forward never change a request's
// tokens or logprobs — greedy or seeded, alone or in a batch, with drafts that are all accepted,
// all rejected or rejected part way (KV rollback), with stop tokens and limits inside a run of
// accepted drafts, with preemption and with prefix caching.
#include <map>
#include <memory>
#include <unordered_map>

#include "tests/unit/worker/tiny_engine_fixture.h"
#include "worker/mtp_drafter.h"

namespace v4 {
namespace {

// `agrees`: SyntheticModelOptions::mtp_agrees (drafts mostly right).
std::string tiny_mtp_model(bool agrees) {
  SyntheticModelOptions o = tiny_model_options();
  o.mtp = MtpLayout::kLlamaCpp;
  o.mtp_agrees = agrees;
  return test_support::cached_test_model(
      agrees ? "tiny-v4096-f32-mtp-agrees.gguf" : "tiny-v4096-f32-mtp-lcpp.gguf", o);
}

// Drafts read from the streams a run without drafts produced (request id → prompt + output),
// wrong wherever `wrong(position)` says: tests choose exactly which drafts are accepted.
class ScriptedDrafts final : public DraftSource {
 public:
  ScriptedDrafts(std::unordered_map<RequestId, std::vector<int32_t>> streams,
                 std::function<bool(uint64_t)> wrong)
      : streams_(std::move(streams)), wrong_(std::move(wrong)) {}
  Status observe(RequestId, uint64_t, std::span<const float>, size_t,
                 std::span<const int32_t>) override {
    return Status::ok();
  }
  Result<std::vector<int32_t>> draft(RequestId id, uint64_t first, std::span<const int32_t> chunk,
                                     uint32_t count) override {
    std::vector<int32_t> d;
    const std::vector<int32_t>& s = streams_.at(id);
    for (uint64_t p = first + chunk.size(); p < first + chunk.size() + count; ++p) {
      const int32_t truth = p < s.size() ? s[p] : 1;
      d.push_back(wrong_(p) ? (truth + 1) % static_cast<int32_t>(kTestVocab) : truth);
    }
    return d;
  }
  void forget(RequestId) override {}

 private:
  std::unordered_map<RequestId, std::vector<int32_t>> streams_;
  std::function<bool(uint64_t)> wrong_;
};

// The model's MTP drafter, recording each draft by (request, first drafted position) and the
// hidden rows and tokens it was shown, by position.
class RecordingDrafter final : public DraftSource {
 public:
  RecordingDrafter(const V4Weights& weights, Backend& backend)
      : forward_(weights, backend), inner_(forward_) {}
  Status observe(RequestId id, uint64_t first, std::span<const float> hidden, size_t rows,
                 std::span<const int32_t> tokens) override {
    const size_t flat = hidden.size() / std::max<size_t>(rows, 1);
    for (size_t r = 0; r < rows; ++r)
      seen_->hidden[first + r].assign(hidden.begin() + static_cast<std::ptrdiff_t>(r * flat),
                                      hidden.begin() + static_cast<std::ptrdiff_t>((r + 1) * flat));
    for (size_t i = 0; i < tokens.size(); ++i) seen_->tokens[first + i] = tokens[i];
    return inner_.observe(id, first, hidden, rows, tokens);
  }
  Result<std::vector<int32_t>> draft(RequestId id, uint64_t first, std::span<const int32_t> chunk,
                                     uint32_t count) override {
    Result<std::vector<int32_t>> d = inner_.draft(id, first, chunk, count);
    if (d && !d->empty()) (*drafts_)[{id, first + chunk.size()}] = *d;
    return d;
  }
  void forget(RequestId id) override { inner_.forget(id); }

  using Record = std::map<std::pair<RequestId, uint64_t>, std::vector<int32_t>>;
  struct Seen {
    std::map<uint64_t, std::vector<float>> hidden;
    std::map<uint64_t, int32_t> tokens;
  };
  std::shared_ptr<Record> drafts() const { return drafts_; }
  std::shared_ptr<Seen> seen() const { return seen_; }

 private:
  V4Forward forward_;
  MtpDrafter inner_;
  std::shared_ptr<Record> drafts_ = std::make_shared<Record>();
  std::shared_ptr<Seen> seen_ = std::make_shared<Seen>();
};

class SpeculativeTest : public EngineTest {
 protected:
  static void SetUpTestSuite() {
    EngineTest::SetUpTestSuite();
    if (!model_) return;
    Result<std::unique_ptr<V4Model>> m = load_v4_model(tiny_mtp_model(false));
    if (m) mtp_model_ = std::move(*m).release();
    Result<std::unique_ptr<V4Model>> a = load_v4_model(tiny_mtp_model(true));
    if (a) agreeing_model_ = std::move(*a).release();
  }
  static void TearDownTestSuite() {
    delete mtp_model_;
    mtp_model_ = nullptr;
    delete agreeing_model_;
    agreeing_model_ = nullptr;
    EngineTest::TearDownTestSuite();
  }
  void SetUp() override {
    EngineTest::SetUp();
    if (!mtp_model_ || !agreeing_model_) GTEST_SKIP() << "no tiny MTP model";
  }

  // Runs the requests in one engine over the MTP model; `drafts` replaces its MTP drafter.
  static Streams run_mtp(const EngineOptions& o, const std::vector<GenerationRequest>& requests,
                         EngineStats* stats = nullptr,
                         std::unique_ptr<DraftSource> drafts = nullptr,
                         const V4Model* model = nullptr) {
    CpuBackend backend(2);
    EngineCore core((model ? model : mtp_model_)->weights, backend, o);
    if (drafts) core.set_draft_source(std::move(drafts));
    Streams streams;
    for (size_t i = 0; i < requests.size(); ++i) {
      Status s = core.add(i + 1, requests[i]);
      EXPECT_TRUE(s) << s.message();
    }
    for (int step = 0; core.has_work() && step < 10000; ++step)
      for (GenerationEvent& e : core.step()) streams[e.id].push_back(std::move(e));
    EXPECT_FALSE(core.has_work());
    // Cached prefix pages no request holds are not in use.
    EXPECT_EQ(core.stats().pages_used, 0u) << "KV pages leaked";
    EXPECT_EQ(core.worker().live_sequences(), 0u);
    if (stats) *stats = core.stats();
    return streams;
  }

  static std::vector<GenerationRequest> requests(size_t n, uint32_t max_tokens) {
    std::vector<GenerationRequest> rs = mixed_requests(n, true);
    for (size_t i = 0; i < rs.size(); ++i) {
      rs[i].sampling.max_tokens = max_tokens + static_cast<uint32_t>(i % 3);
      rs[i].sampling.top_logprobs = 2;
      if (i % 2 == 0) rs[i].sampling.temperature = 0.0f;  // greedy
    }
    if (n > 1) rs[1].sampling.repetition_penalty = 1.3f;
    if (n > 3) rs[3].sampling.presence_penalty = 0.5f;
    return rs;
  }

  static std::vector<GenerationRequest> with_drafts(std::vector<GenerationRequest> rs, uint32_t k) {
    for (GenerationRequest& r : rs) r.speculative_tokens = k;
    return rs;
  }

  static void expect_same(const Streams& a, const Streams& b) {
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [id, events] : a) {
      const std::vector<GenerationEvent>& other = b.at(id);
      ASSERT_EQ(tokens_of(events), tokens_of(other)) << "request " << id;
      for (size_t i = 0; i < events.size(); ++i) {
        EXPECT_EQ(events[i].logprob, other[i].logprob) << "request " << id << " token " << i;
        ASSERT_EQ(events[i].top_logprobs.size(), other[i].top_logprobs.size());
        for (size_t j = 0; j < events[i].top_logprobs.size(); ++j) {
          EXPECT_EQ(events[i].top_logprobs[j].token, other[i].top_logprobs[j].token);
          EXPECT_EQ(events[i].top_logprobs[j].logprob, other[i].top_logprobs[j].logprob);
        }
        EXPECT_EQ(events[i].finish, other[i].finish) << "request " << id << " token " << i;
      }
    }
  }

  static std::unordered_map<RequestId, std::vector<int32_t>> streams_of(
      const std::vector<GenerationRequest>& rs, const Streams& out) {
    std::unordered_map<RequestId, std::vector<int32_t>> s;
    for (size_t i = 0; i < rs.size(); ++i) {
      std::vector<int32_t> t = rs[i].prompt;
      for (int32_t x : tokens_of(out.at(i + 1))) t.push_back(x);
      s[i + 1] = std::move(t);
    }
    return s;
  }

  static V4Model* mtp_model_;
  static V4Model* agreeing_model_;
};

inline V4Model* SpeculativeTest::mtp_model_ = nullptr;
inline V4Model* SpeculativeTest::agreeing_model_ = nullptr;

TEST_F(SpeculativeTest, MtpDraftsNeverChangeTokensAloneOrBatched) {
  const std::vector<GenerationRequest> rs = requests(6, 10);
  const Streams plain = run_mtp(options(), rs);
  for (uint32_t k = 1; k <= kMaxSpeculativeTokens; ++k) {
    EngineStats stats;
    expect_same(plain, run_mtp(options(), with_drafts(rs, k), &stats));
    EXPECT_GT(stats.speculative.drafts, 0u) << "k " << k;
    // Batch of one: each request in its own engine.
    for (size_t i = 0; i < rs.size(); i += 3) {
      const Streams alone = run_mtp(options(), with_drafts({rs[i]}, k));
      EXPECT_EQ(tokens_of(alone.at(1)), tokens_of(plain.at(i + 1))) << "request " << i;
    }
  }
}

// The model's own MTP block with high acceptance: full runs of accepted drafts and rollbacks
// both happen through the real drafter, and the tokens stay those of decoding without drafts.
TEST_F(SpeculativeTest, AgreeingMtpDraftsAreAcceptedAndChangeNothing) {
  const std::vector<GenerationRequest> rs = requests(6, 16);
  const Streams plain = run_mtp(options(), rs, nullptr, nullptr, agreeing_model_);
  EngineStats plain_alone;
  run_mtp(options(), {rs[0]}, &plain_alone, nullptr, agreeing_model_);
  for (uint32_t k = 1; k <= kMaxSpeculativeTokens; ++k) {
    SCOPED_TRACE("k " + std::to_string(k));
    EngineStats stats;
    expect_same(plain, run_mtp(options(), with_drafts(rs, k), &stats, nullptr, agreeing_model_));
    const SpeculativeStats& s = stats.speculative;
    // Greedy requests follow the near-bigram chain the MTP block predicts; seeded ones often not.
    EXPECT_GT(static_cast<double>(s.accepted_tokens), 0.3 * static_cast<double>(s.draft_tokens));
    EXPECT_LT(s.accepted_tokens, s.draft_tokens);  // some rollbacks too
    // A greedy request alone: accepted drafts save steps.
    EngineStats alone_stats;
    const Streams alone =
        run_mtp(options(), with_drafts({rs[0]}, k), &alone_stats, nullptr, agreeing_model_);
    EXPECT_EQ(tokens_of(alone.at(1)), tokens_of(plain.at(1)));
    EXPECT_LT(alone_stats.steps, plain_alone.steps);
  }
}

TEST_F(SpeculativeTest, AcceptedAndRejectedDraftsGiveTheSameTokens) {
  const std::vector<GenerationRequest> rs = requests(5, 14);
  EngineStats plain_stats;
  const Streams plain = run_mtp(options(), rs, &plain_stats);
  const auto truth = streams_of(rs, plain);
  struct Case {
    const char* name;
    std::function<bool(uint64_t)> wrong;
  };
  const Case cases[] = {{"all right", [](uint64_t) { return false; }},
                        {"all wrong", [](uint64_t) { return true; }},
                        {"every 3rd wrong", [](uint64_t p) { return p % 3 == 0; }},
                        {"every 5th wrong", [](uint64_t p) { return p % 5 == 2; }}};
  for (const Case& c : cases) {
    for (uint32_t k = 1; k <= kMaxSpeculativeTokens; ++k) {
      SCOPED_TRACE(std::string(c.name) + ", k " + std::to_string(k));
      EngineStats stats;
      const Streams spec = run_mtp(options(), with_drafts(rs, k), &stats,
                                   std::make_unique<ScriptedDrafts>(truth, c.wrong));
      expect_same(plain, spec);
      const SpeculativeStats& s = stats.speculative;
      EXPECT_GT(s.draft_tokens, 0u);
      if (std::string(c.name) == "all right") {
        EXPECT_EQ(s.accepted_tokens, s.draft_tokens);
        EXPECT_LT(stats.steps, plain_stats.steps);
      }
      if (std::string(c.name) == "all wrong") {
        EXPECT_EQ(s.accepted_tokens, 0u);
      }
      if (std::string(c.name) == "every 3rd wrong") {
        EXPECT_GT(s.accepted_tokens, 0u);
        EXPECT_LT(s.accepted_tokens, s.draft_tokens);
      }
      uint64_t per_position = 0;
      for (uint64_t n : s.accepted_per_position) per_position += n;
      EXPECT_EQ(per_position, s.accepted_tokens);
    }
  }
}

// A stop token or the max_tokens limit reached inside a run of accepted drafts ends the request
// there, exactly as one token at a time would.
TEST_F(SpeculativeTest, StopsAndLimitsInsideAcceptedDrafts) {
  std::vector<GenerationRequest> rs = requests(4, 9);
  const Streams first = run_mtp(options(), rs);
  // Stop at an output token that a run of drafts covers (its first occurrence, past the first).
  for (size_t i = 0; i < rs.size(); i += 2) {
    const std::vector<int32_t> out = tokens_of(first.at(i + 1));
    rs[i].sampling.stop_token_ids = {out[4]};
  }
  const Streams plain = run_mtp(options(), rs);
  for (uint32_t k = 1; k <= kMaxSpeculativeTokens; ++k) {
    const Streams spec = run_mtp(
        options(), with_drafts(rs, k), nullptr,
        std::make_unique<ScriptedDrafts>(streams_of(rs, first), [](uint64_t) { return false; }));
    expect_same(plain, spec);
  }
}

TEST_F(SpeculativeTest, PreemptionKeepsTheTokens) {
  std::vector<GenerationRequest> rs = requests(6, 30);
  for (GenerationRequest& r : rs)  // every request crosses a 128-token page boundary
    r.prompt = prompt(100 + r.prompt.size() % 30, static_cast<uint32_t>(r.prompt.size()));
  const Streams plain = run_mtp(options(), rs);
  EngineOptions tight = options();
  tight.total_pages = 4;  // 6 requests needing 2 pages each at the end
  EngineStats stats;
  const Streams spec = run_mtp(tight, with_drafts(rs, 3), &stats,
                               std::make_unique<ScriptedDrafts>(
                                   streams_of(rs, plain), [](uint64_t p) { return p % 4 == 1; }));
  expect_same(plain, spec);
  EXPECT_GT(stats.preemptions, 0u);
  EXPECT_GT(stats.speculative.accepted_tokens, 0u);
  expect_same(plain, run_mtp(tight, with_drafts(rs, 2)));
}

TEST_F(SpeculativeTest, PrefixCachingKeepsTheTokens) {
  std::vector<GenerationRequest> rs = requests(4, 12);
  for (size_t i = 0; i < rs.size(); ++i) {  // a shared first page, then distinct tails
    const std::vector<int32_t> tail = prompt(40, static_cast<uint32_t>(20 + i));
    rs[i].prompt = prompt(140, 7);
    rs[i].prompt.insert(rs[i].prompt.end(), tail.begin() + 1, tail.end());
  }
  EngineOptions o = options();
  o.prefix_caching = true;
  const Streams plain = run_mtp(o, rs);
  EngineStats stats;
  const Streams spec = run_mtp(o, with_drafts(rs, 3), &stats,
                               std::make_unique<ScriptedDrafts>(
                                   streams_of(rs, plain), [](uint64_t p) { return p % 4 == 1; }));
  expect_same(plain, spec);
  EXPECT_GT(stats.prefix_hits, 0u);
  expect_same(plain, run_mtp(o, with_drafts(rs, 2)));
}

// EngineOptions::speculative_max_batch: a request drafts while it runs alone, not while a second
// one runs beside it (longer than the MTP block's window), and again once that one finished; its
// tokens are those of decoding without drafts.
TEST_F(SpeculativeTest, BatchLimitPausesDraftsAndChangesNothing) {
  std::vector<GenerationRequest> rs = requests(2, 0);
  rs[0].sampling.max_tokens = 150;  // greedy
  rs[1].sampling.max_tokens = 90;   // longer than the tiny model's 64-row window
  const Streams plain = run_mtp(options(), rs, nullptr, nullptr, agreeing_model_);
  EngineOptions o = options();
  o.speculative_max_batch = 1;
  CpuBackend backend(2);
  EngineCore core(agreeing_model_->weights, backend, o);
  auto drafter = std::make_unique<RecordingDrafter>(agreeing_model_->weights, backend);
  const std::shared_ptr<RecordingDrafter::Record> record = drafter->drafts();
  core.set_draft_source(std::move(drafter));
  Streams streams;
  ASSERT_TRUE(core.add(1, with_drafts({rs[0]}, 2)[0]));
  for (int step = 0; core.has_work() && step < 10000; ++step) {
    if (step == 12) {
      ASSERT_TRUE(core.add(2, with_drafts({rs[1]}, 2)[0]));
    }
    for (GenerationEvent& e : core.step()) streams[e.id].push_back(std::move(e));
  }
  expect_same(plain, streams);
  // Request 2 never drafts (it never runs alone); request 1 drafts before and after the pause.
  const uint64_t pause_start = rs[0].prompt.size() + 12;
  const uint64_t pause_end = pause_start + rs[1].sampling.max_tokens;
  uint64_t before = 0, after = 0;
  for (const auto& [key, drafts] : *record) {
    EXPECT_EQ(key.first, 1u);
    before += key.second <= pause_start ? 1 : 0;
    after += key.second >= pause_end ? 1 : 0;
  }
  EXPECT_GT(before, 0u);
  EXPECT_GT(after, 0u);
}

// The MTP drafter after a pause longer than its window (rows dropped, the window skipped ahead)
// drafts exactly what a drafter that drafted at every position does: the rows it dropped were
// outside every draft's attention. Both replay the hidden rows of a real run, one position a step.
TEST_F(SpeculativeTest, DrafterPausedLongerThanItsWindowDraftsTheSame) {
  std::vector<GenerationRequest> rs = requests(1, 0);
  rs[0].sampling.max_tokens = 200;
  CpuBackend backend(2);
  EngineCore core(agreeing_model_->weights, backend, options());
  auto recorder = std::make_unique<RecordingDrafter>(agreeing_model_->weights, backend);
  const std::shared_ptr<RecordingDrafter::Seen> seen = recorder->seen();
  core.set_draft_source(std::move(recorder));
  ASSERT_TRUE(core.add(1, with_drafts(rs, 2)[0]));
  for (int step = 0; core.has_work() && step < 10000; ++step) core.step();
  ASSERT_GE(seen->hidden.size(), 190u);

  V4Forward forward(agreeing_model_->weights, backend);
  MtpDrafter continuous(forward), paused(forward);
  const uint64_t first = rs[0].prompt.size(), pause = first + 20, resume = pause + 100;
  uint64_t compared = 0;
  for (uint64_t q = first; seen->hidden.count(q) && seen->tokens.count(q + 1); ++q) {
    const int32_t input = seen->tokens.at(q);
    Result<std::vector<int32_t>> a = continuous.draft(1, q, {&input, 1}, 3);
    ASSERT_TRUE(a) << a.message();
    if (q < pause || q >= resume) {
      Result<std::vector<int32_t>> b = paused.draft(1, q, {&input, 1}, 3);
      ASSERT_TRUE(b) << b.message();
      if (q >= resume && !a->empty()) {
        EXPECT_EQ(*a, *b) << "position " << q;
        // The rows a draft here attends over (positions q - window .. q - 1), bit for bit.
        const uint64_t window = agreeing_model_->weights.config.sliding_window;
        for (uint64_t p = q - window; p < q; ++p) {
          const std::span<const float> x = continuous.window(1)->row(p);
          const std::span<const float> y = paused.window(1)->row(p);
          ASSERT_FALSE(x.empty());
          ASSERT_TRUE(std::equal(x.begin(), x.end(), y.begin(), y.end()))
              << "position " << q << ", row " << p;
        }
        ++compared;
      }
    }
    const std::vector<float>& h = seen->hidden.at(q);
    const int32_t pair[2] = {input, seen->tokens.at(q + 1)};
    for (MtpDrafter* d : {&continuous, &paused}) ASSERT_TRUE(d->observe(1, q, h, 1, pair));
  }
  EXPECT_GT(compared, 50u);
}

TEST_F(SpeculativeTest, RequestsAreValidated) {
  CpuBackend backend(1);
  EngineCore core(mtp_model_->weights, backend, options());
  GenerationRequest r;
  r.prompt = prompt(4, 1);
  r.speculative_tokens = kMaxSpeculativeTokens + 1;
  EXPECT_FALSE(core.add(r));
  EngineCore plain(weights(), backend, options());
  r.speculative_tokens = 1;
  Status s = plain.add(1, r);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("MTP"), std::string::npos) << s.message();
  r.speculative_tokens = 0;
  EXPECT_TRUE(plain.add(2, r));
}

}  // namespace
}  // namespace v4
