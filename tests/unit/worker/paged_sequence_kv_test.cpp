// The paged KV state against the forward's own contiguous state: the backend's KV ops reach
// rows only through the block tables, so pages scattered anywhere in the pool, shared with
// another sequence's step, or resumed from a prefix snapshot must give bit-identical logits.
#include "worker/paged_sequence_kv.h"

#include <memory>

#include "tests/unit/worker/tiny_engine_fixture.h"

namespace v4 {
namespace {

class PagedSequenceKvTest : public EngineTest {
 protected:
  // Every position's logits of `tokens`, fed through `state` in chunks of `chunk`.
  static std::vector<float> logits_of(V4Forward& fwd, KvStateStore& state,
                                      std::span<const int32_t> tokens, size_t chunk) {
    std::vector<float> all;
    for (size_t first = 0; first < tokens.size(); first += chunk) {
      SequenceInput in{&state, tokens.subspan(first, std::min(chunk, tokens.size() - first)), true};
      Result<ForwardOutput> out = fwd.forward({&in, 1});
      EXPECT_TRUE(out) << out.message();
      if (!out) return {};
      all.insert(all.end(), out->logits.begin(), out->logits.end());
    }
    return all;
  }
};

TEST_F(PagedSequenceKvTest, ScatteredBlockTablesMatchContiguousState) {
  const V4Config& c = weights().config;
  CpuBackend backend(2);
  V4Forward fwd(weights(), backend);
  const std::vector<int32_t> a = prompt(300, 1), b = prompt(290, 2);
  ContiguousKvState alone(c, backend);
  const std::vector<float> want_a = logits_of(fwd, alone, a, 64);
  ASSERT_FALSE(want_a.empty());

  // Two sequences in one pool with interleaved, out-of-order pages, stepped together.
  PagedKvOptions kv;
  kv.page_tokens = 128;
  kv.total_pages = 8;
  PagedKvCache cache(c, kv, backend);
  PagedSequenceKv pa(c, cache, 64), pb(c, cache, 64);
  pa.set_pages({6, 1, 4});
  pb.set_pages({0, 7, 2});
  std::vector<float> got_a;
  for (size_t first = 0; first < a.size(); first += 64) {
    const auto chunk = [&](const std::vector<int32_t>& t) {
      return std::span<const int32_t>(t).subspan(
          std::min(first, t.size()), std::min<size_t>(64, t.size() - std::min(first, t.size())));
    };
    std::vector<SequenceInput> in{{&pa, chunk(a), true}};
    if (!chunk(b).empty()) in.push_back({&pb, chunk(b), true});
    Result<ForwardOutput> out = fwd.forward(in);
    ASSERT_TRUE(out) << out.message();
    got_a.insert(got_a.end(), out->logits.begin(),
                 out->logits.begin() + static_cast<std::ptrdiff_t>(out->row_count[0] * c.n_vocab));
  }
  ASSERT_EQ(got_a.size(), want_a.size());
  for (size_t i = 0; i < got_a.size(); ++i) {
    if (got_a[i] != want_a[i]) {
      ADD_FAILURE() << "first difference at row " << i / c.n_vocab << ": " << got_a[i] << " vs "
                    << want_a[i];
      break;
    }
  }
}

// A snapshot taken at a page boundary, restored into a fresh sequence over the same shared
// pages, continues exactly as the original would (spec §4.4).
TEST_F(PagedSequenceKvTest, RestoredSnapshotContinuesBitExactly) {
  const V4Config& c = weights().config;
  CpuBackend backend(2);
  V4Forward fwd(weights(), backend);
  const std::vector<int32_t> t = prompt(300, 4);
  const std::span<const int32_t> head(t.data(), 256), tail(t.data() + 256, 44);
  PagedKvOptions kv;
  kv.page_tokens = 128;
  kv.total_pages = 6;
  PagedKvCache cache(c, kv, backend);
  PagedSequenceKv original(c, cache, 128);
  original.set_pages({3, 0, 5});
  ASSERT_FALSE(logits_of(fwd, original, head, 128).empty());
  Result<KvSnapshot> snap = original.snapshot();
  ASSERT_TRUE(snap) << snap.message();
  const std::vector<float> want = logits_of(fwd, original, tail, 128);

  PagedSequenceKv resumed(c, cache, 128);
  ASSERT_TRUE(resumed.restore(*snap));
  resumed.set_pages({3, 0, 1});  // the two shared pages, then a page of its own
  EXPECT_EQ(resumed.n_past(), 256u);
  const std::vector<float> got = logits_of(fwd, resumed, tail, 128);
  ASSERT_FALSE(want.empty());
  EXPECT_TRUE(got == want) << "the resumed sequence's logits differ";
}

// A block table too short for the step is refused before anything is written.
TEST_F(PagedSequenceKvTest, ShortBlockTableIsRefused) {
  CpuBackend backend(1);
  V4Forward fwd(weights(), backend);
  PagedKvOptions kv;
  kv.page_tokens = 128;
  kv.total_pages = 2;
  PagedKvCache cache(weights().config, kv, backend);
  PagedSequenceKv s(weights().config, cache, 256);
  s.set_pages({1});
  const std::vector<int32_t> t = prompt(129, 5);
  SequenceInput in{&s, t};
  Result<ForwardOutput> out = fwd.forward({&in, 1});
  ASSERT_FALSE(out);
  EXPECT_NE(out.message().find("cannot hold 129 tokens"), std::string::npos) << out.message();
}

}  // namespace
}  // namespace v4
