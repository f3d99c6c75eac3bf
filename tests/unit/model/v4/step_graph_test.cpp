// Decode steps run from recordings (StepGraphs, Backend::begin_capture) against the same steps
// run op by op: bit-identical logits, candidates, normalizers and draws, while shapes repeat,
// change, cross a position bound and outlive a buffer that moved. The oracle is the forward
// without recordings on the same backend (itself compared with the CPU forward in
// device_forward_test). "emulated" records the device kernels on the host, with a CUDA graph's
// semantics; the "cuda" variants skip, saying why, where no GPU is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "model/backend/device/backend_factory.h"
#include "model/backend/device/emulated_backend.h"
#include "model/synthetic/synthetic_model.h"
#include "model/v4/device_weights.h"
#include "model/v4/step_graphs.h"
#include "model/v4/v4_forward.h"
#include "model/v4/v4_forward_model.h"
#include "tests/unit/model/v4/forward_comparison.h"

namespace v4 {
namespace {

using forward_comparison::kOther;
using forward_comparison::kPrompt;
using forward_comparison::tiny_model;

std::unique_ptr<Backend> make(const std::string& device, std::string* why) {
  if (device == "emulated")
    return std::make_unique<device::EmulatedDeviceBackend>(kernels::HostExec{});
  Result<std::unique_ptr<Backend>> be = device::make_backend({DeviceKind::kCuda, 0}, 1);
  if (!be) {
    *why = be.message();
    return nullptr;
  }
  return std::move(*be);
}

Tensor floats(DeviceBuffer* buffer, size_t offset_floats, int64_t n) {
  return Tensor::contiguous(buffer, offset_floats * sizeof(float), GgmlType::F32, {n, 1, 1, 1});
}

class StepGraphBackend : public ::testing::TestWithParam<std::string> {};

TEST_P(StepGraphBackend, ReplaysWhatItRecordedWithTheInputsOfTheReplay) {
  std::string why;
  std::unique_ptr<Backend> be = make(GetParam(), &why);
  if (!be) GTEST_SKIP() << "no usable GPU, CUDA step graph test skipped: " << why;
  ASSERT_TRUE(be->can_capture());
  std::unique_ptr<DeviceBuffer> buffer = be->allocate(6 * sizeof(float));
  const Tensor a = floats(buffer.get(), 0, 3), y = floats(buffer.get(), 3, 3);
  const float a0[3] = {1, 2, 3}, y0[3] = {10, 20, 30}, a1[3] = {100, 200, 300};
  ASSERT_TRUE(be->copy_to_device(a0, a, 0, sizeof a0));
  ASSERT_TRUE(be->copy_to_device(y0, y, 0, sizeof y0));
  be->begin_capture();
  be->add(a.data<float>(), 3, y.data<float>());
  Result<std::unique_ptr<StepGraph>> graph = be->end_capture();
  ASSERT_TRUE(graph) << graph.message();
  float got[3];
  ASSERT_TRUE(be->copy_to_host(y, 0, got, sizeof got));
  EXPECT_EQ(std::vector<float>(got, got + 3), std::vector<float>({10, 20, 30}))
      << "a capture must record, not run";
  ASSERT_TRUE(be->replay(**graph));
  ASSERT_TRUE(be->copy_to_host(y, 0, got, sizeof got));
  EXPECT_EQ(std::vector<float>(got, got + 3), std::vector<float>({11, 22, 33}));
  ASSERT_TRUE(be->copy_to_device(a1, a, 0, sizeof a1));
  ASSERT_TRUE(be->replay(**graph));
  ASSERT_TRUE(be->copy_to_host(y, 0, got, sizeof got));
  EXPECT_EQ(std::vector<float>(got, got + 3), std::vector<float>({111, 222, 333}));
}

TEST_P(StepGraphBackend, WhatNeedsTheHostBreaksACapture) {
  std::string why;
  std::unique_ptr<Backend> be = make(GetParam(), &why);
  if (!be) GTEST_SKIP() << "no usable GPU, CUDA step graph test skipped: " << why;
  std::unique_ptr<DeviceBuffer> buffer = be->allocate(4 * sizeof(float));
  const Tensor x = floats(buffer.get(), 0, 4);
  const float ones[4] = {1, 1, 1, 1};
  be->begin_capture();
  ASSERT_TRUE(be->copy_to_device(ones, x, 0, sizeof ones));
  Result<std::unique_ptr<StepGraph>> copied = be->end_capture();
  ASSERT_FALSE(copied);
  EXPECT_NE(copied.message().find("copy from the host"), std::string::npos) << copied.message();
  be->begin_capture();
  std::unique_ptr<DeviceBuffer> more = be->allocate(64);
  more.reset();
  Result<std::unique_ptr<StepGraph>> allocated = be->end_capture();
  ASSERT_FALSE(allocated);
  EXPECT_NE(allocated.message().find("allocation"), std::string::npos) << allocated.message();
  // The backend works on after a broken capture.
  be->add(x.data<float>(), 4, x.data<float>());
  float got[4];
  ASSERT_TRUE(be->copy_to_host(x, 0, got, sizeof got));
  EXPECT_EQ(got[3], 2.0f);
}

INSTANTIATE_TEST_SUITE_P(Backends, StepGraphBackend,
                         ::testing::Values(std::string("emulated"), std::string("cuda")));

TEST(StepGraphShapes, DecodeBucketsAreFewAndWasteAtMostAThird) {
  const std::vector<int64_t> want{1, 2, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12, 16, 16, 16, 16, 24};
  for (int64_t n = 1; n <= static_cast<int64_t>(want.size()); ++n)
    EXPECT_EQ(decode_bucket(n), want[static_cast<size_t>(n - 1)]) << n;
  std::vector<int64_t> sizes;
  for (int64_t n = 1; n <= 256; ++n) {
    const int64_t b = decode_bucket(n);
    EXPECT_GE(b, n);
    if (n > 8) {
      EXPECT_LT(3 * (b - n), b) << n;
    }
    if (sizes.empty() || sizes.back() != b) sizes.push_back(b);
  }
  EXPECT_EQ(sizes.size(), 14u);
}

TEST(StepGraphShapes, PositionBoundIsAPowerOfTwoOfAtLeast256) {
  EXPECT_EQ(StepGraphs::position_bound(0), 256u);
  EXPECT_EQ(StepGraphs::position_bound(1), 256u);
  EXPECT_EQ(StepGraphs::position_bound(256), 256u);
  EXPECT_EQ(StepGraphs::position_bound(257), 512u);
  EXPECT_EQ(StepGraphs::position_bound(1u << 20), 1u << 20);
}

// Two forwards on one backend, one recording its decode steps and one not, fed the same tokens.
class StepGraphForward : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why;
    backend_ = make(GetParam(), &why);
    if (!backend_) GTEST_SKIP() << "no usable GPU, CUDA step graph test skipped: " << why;
    Result<std::unique_ptr<V4Model>> m = load_v4_model(tiny_model(Recipe::kDs4Q2));
    ASSERT_TRUE(m) << m.message();
    model_ = std::move(*m);
    Result<std::unique_ptr<DeviceWeights>> w = DeviceWeights::upload(model_->weights, *backend_);
    ASSERT_TRUE(w) << w.message();
    resident_ = std::move(*w);
    recorded_ = std::make_unique<V4Forward>(resident_->weights(), *backend_, nullptr,
                                            ForwardLimits{0, 0, 64});
    plain_ = std::make_unique<V4Forward>(resident_->weights(), *backend_, nullptr,
                                         ForwardLimits{0, 0, 0});
  }
  const V4Config& config() const { return model_->weights.config; }

  // One sequence per forward, prefilled with all but the last token of `prompt` (a step of its
  // own: never recorded); the last is its first decode step's token.
  struct Pair {
    std::unique_ptr<ContiguousKvState> recorded, plain;
    int32_t next = 0;
  };
  Pair start(const std::vector<int32_t>& prompt) {
    Pair p{std::make_unique<ContiguousKvState>(config(), *backend_),
           std::make_unique<ContiguousKvState>(config(), *backend_), prompt.back()};
    for (auto [forward, state] :
         {std::pair{recorded_.get(), p.recorded.get()}, std::pair{plain_.get(), p.plain.get()}}) {
      if (prompt.size() < 2) break;
      SequenceInput in{state, std::span<const int32_t>(prompt).first(prompt.size() - 1)};
      in.no_logits = true;
      EXPECT_TRUE(forward->forward({&in, 1}));
    }
    return p;
  }

  // One decode step of `pairs` on both forwards: pair i asks for what kind (i + skip) % 3 asks
  // for (its logits; 8 candidates and the normalizer; a draw; skip 1 and no pair at index 2 mod
  // 3: none asks for logits). Every output must be equal; each pair's next token is its best
  // (or drawn) token.
  void step(std::vector<Pair*> pairs, uint64_t seed, size_t skip = 0, uint32_t candidates = 8) {
    std::vector<SequenceInput> recorded, plain;
    auto kind = [&](size_t i) { return (i + skip) % 3 == 0 && skip ? 1 : (i + skip) % 3; };
    for (size_t i = 0; i < pairs.size(); ++i) {
      for (auto [inputs, state] : {std::pair{&recorded, pairs[i]->recorded.get()},
                                   std::pair{&plain, pairs[i]->plain.get()}}) {
        SequenceInput in{state, std::span<const int32_t>(&pairs[i]->next, 1)};
        if (kind(i) == 1) {
          in.top_candidates = candidates;
          in.candidate_logprobs = candidates > 1;
        } else if (kind(i) == 2) {
          in.draw =
              kernels::RowDrawParams{{0.8f, 0.9f, 0.02f}, 0, (seed * 0x9E3779B97F4A7C15ull) >> 11};
        }
        inputs->push_back(in);
      }
    }
    Result<ForwardOutput> a = recorded_->forward(recorded), b = plain_->forward(plain);
    ASSERT_TRUE(a) << a.message();
    ASSERT_TRUE(b) << b.message();
    EXPECT_EQ(a->logits, b->logits) << "seed " << seed;
    EXPECT_EQ(a->candidate_ids, b->candidate_ids) << "seed " << seed;
    EXPECT_EQ(a->candidate_logits, b->candidate_logits) << "seed " << seed;
    EXPECT_EQ(a->log_normalizer, b->log_normalizer) << "seed " << seed;
    EXPECT_EQ(a->drawn_tokens, b->drawn_tokens) << "seed " << seed;
    EXPECT_EQ(a->drawn_logits, b->drawn_logits) << "seed " << seed;
    const size_t vocab = config().n_vocab;
    for (size_t i = 0; i < pairs.size(); ++i) {
      if (kind(i) == 0) {
        const float* row = a->logits.data() + a->first_row[i] * vocab;
        pairs[i]->next = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
      } else if (kind(i) == 1) {
        pairs[i]->next = a->candidate_ids[i * a->candidate_k];
      } else {
        ASSERT_GE(a->drawn_tokens[i], 0);
        pairs[i]->next = a->drawn_tokens[i];
      }
    }
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<V4Model> model_;
  std::unique_ptr<DeviceWeights> resident_;
  std::unique_ptr<V4Forward> recorded_, plain_;
};

TEST_P(StepGraphForward, RecordedDecodeStepsEqualStepsRunOpByOp) {
  Pair a = start(kPrompt), b = start(kOther), c = start({9, 8, 7});
  uint64_t seed = 1;
  for (int i = 0; i < 4; ++i) step({&a, &b, &c}, seed++);
  // A different batch is a different shape; the first one is replayed again after it.
  for (int i = 0; i < 3; ++i) step({&c, &a}, seed++);
  for (int i = 0; i < 2; ++i) step({&a, &b, &c}, seed++);
  const StepGraphStats& s = recorded_->stats().step_graphs;
  EXPECT_EQ(s.captures, 2u);
  EXPECT_EQ(s.replays, 7u) << "steps 2-4 and 8-9 of the first shape, 6-7 of the second";
  EXPECT_EQ(s.broken, 0u);
  EXPECT_EQ(plain_->stats().step_graphs.captures, 0u);
  EXPECT_EQ(plain_->stats().step_graphs.replays, 0u);
}

// Past position 256 a sequence's steps use the next bound: a new recording, equal results.
TEST_P(StepGraphForward, StepsAcrossAPositionBound) {
  std::vector<int32_t> prompt(250);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 37 + 11) % 4096);
  Pair a = start(prompt);
  for (uint64_t seed = 1; seed <= 10; ++seed) step({&a}, seed);
  const StepGraphStats& s = recorded_->stats().step_graphs;
  EXPECT_EQ(s.captures, 2u) << "one recording below position 256, one above";
  EXPECT_EQ(s.replays, 8u) << "steps 2-7 below, 9-10 above";
}

// A step larger than any before moves the workspace: every recording made before is dropped
// (it points into the old one) and the shape is recorded again.
TEST_P(StepGraphForward, ABufferThatMovesDropsTheRecordings) {
  Pair a = start(kPrompt), b = start(kOther);
  for (uint64_t seed = 1; seed <= 3; ++seed) step({&a, &b}, seed);
  std::vector<int32_t> longer(40);
  for (size_t i = 0; i < longer.size(); ++i) longer[i] = static_cast<int32_t>(i * 101 % 4096);
  Pair c = start(longer);
  for (uint64_t seed = 4; seed <= 7; ++seed) step({&a, &b}, seed);
  const StepGraphStats& s = recorded_->stats().step_graphs;
  EXPECT_EQ(s.invalidations, 1u);
  EXPECT_EQ(s.captures, 2u) << "the shape is recorded again on its first step after the move";
  EXPECT_EQ(s.replays, 6u);
  EXPECT_EQ(s.broken, 0u);
}

// More rows than the head takes at once (64): the recording runs every logit batch, each into
// its own block of compact outputs, when no row wants its logits back.
TEST_P(StepGraphForward, StepsWiderThanOneLogitBatch) {
  std::vector<Pair> pairs;
  for (int32_t i = 0; i < 66; ++i) pairs.push_back(start({2 * i + 1}));
  std::vector<Pair*> all;
  for (Pair& p : pairs) all.push_back(&p);
  for (uint64_t seed = 1; seed <= 3; ++seed) step(all, seed, 1);
  const StepGraphStats& s = recorded_->stats().step_graphs;
  EXPECT_EQ(s.captures, 1u);
  EXPECT_EQ(s.replays, 2u);
  // With one row that wants its logits the step runs op by op, and still equal.
  step(all, 4);
  EXPECT_EQ(recorded_->stats().step_graphs.replays, 2u);
}

// Decode steps of 5 to 8 sequences are padded to 8 rows and share one recording; the real rows'
// outputs equal the unpadded steps' run op by op, and the expert statistics count the real rows
// alone (a replay counts as many as its step has, not as many as the recording had).
TEST_P(StepGraphForward, PaddedStepsShareOneRecordingPerBatchSizeBucket) {
  std::vector<Pair> pairs;
  for (int32_t i = 0; i < 8; ++i) pairs.push_back(start({3 * i + 2, i + 7}));
  std::vector<Pair*> all;
  for (Pair& p : pairs) all.push_back(&p);
  uint64_t seed = 1;
  for (size_t n = 5; n <= 8; ++n) step({all.begin(), all.begin() + n}, seed++, 1);
  const StepGraphStats& s = recorded_->stats().step_graphs;
  EXPECT_EQ(s.captures, 1u) << "5, 6, 7 and 8 sequences: one bucket of 8 rows";
  EXPECT_EQ(s.replays, 3u) << "the steps of 6 (recorded, then launched), 7 and 8";
  step({all.begin(), all.begin() + 3}, seed++, 1);
  EXPECT_EQ(recorded_->stats().step_graphs.captures, 1u) << "3 sequences: a bucket of 4, new";
  EXPECT_EQ(recorded_->stats().expert_selections, plain_->stats().expert_selections);
}

// Recorded before any sequence: every padded batch size up to 6 sequences (8, 4, 2, 1) for
// sampled, greedy and mixed rows. Prefill steps after that move nothing the recordings use (they
// keep their scratch apart, and the dispatch buffers are sized for max_tokens), so the decode
// steps replay from their first step on, equal to the steps run op by op, and the padding rows
// run at start count in no expert statistics.
TEST_P(StepGraphForward, RecordedAtStartAndKeptThroughPrefills) {
  ForwardLimits limits;
  limits.max_tokens = 64;
  limits.graph_positions = 512;
  recorded_ = std::make_unique<V4Forward>(resident_->weights(), *backend_, nullptr, limits);
  const ContiguousKvState layout_of(config(), *backend_);
  Result<DecodeGraphCapture> got = recorded_->capture_decode_graphs(layout_of.layout(), 6, 600);
  ASSERT_TRUE(got) << got.message();
  EXPECT_EQ(got->batch_sizes, (std::vector<int64_t>{8, 4, 2, 1}));
  EXPECT_EQ(got->position_bound, 512u);
  EXPECT_EQ(got->shapes, 12u);
  EXPECT_EQ(got->recorded, 12u);
  EXPECT_TRUE(got->stopped.empty()) << got->stopped;
  std::vector<int32_t> longer(60);
  for (size_t i = 0; i < longer.size(); ++i) longer[i] = static_cast<int32_t>(i * 53 % 4096);
  Pair a = start(kPrompt), b = start(longer), c = start({9, 8, 7});
  uint64_t seed = 1;
  // Greedy and drawn rows in one step (the mixed kind), then all greedy, then all drawn.
  for (int i = 0; i < 2; ++i) step({&a, &b, &c}, seed++, 1, 1);
  step({&a, &c}, seed++, 0, 1);
  step({&b}, seed++, 2, 1);
  const StepGraphStats& s = recorded_->stats().step_graphs;
  EXPECT_EQ(s.captures, 12u) << "no decode step needed a recording of its own";
  EXPECT_EQ(s.invalidations, 0u) << "a prefill moved a buffer the recordings use";
  EXPECT_EQ(s.replays, 12u + 4u);
  EXPECT_EQ(recorded_->stats().expert_selections, plain_->stats().expert_selections);
  // A budget spent before the first recording: nothing more is recorded, and it says why.
  Result<DecodeGraphCapture> none = recorded_->capture_decode_graphs(layout_of.layout(), 6, 1e-9);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->recorded, 0u);
  EXPECT_NE(none->stopped.find("budget of 1e-09 s was spent"), std::string::npos) << none->stopped;
  // No decode step holds more sequences than the forward's max_tokens: more asked for add no
  // size beyond it.
  limits.max_tokens = 4;
  V4Forward small(resident_->weights(), *backend_, nullptr, limits);
  Result<DecodeGraphCapture> capped = small.capture_decode_graphs(layout_of.layout(), 100, 1e-9);
  ASSERT_TRUE(capped) << capped.message();
  EXPECT_EQ(capped->batch_sizes, (std::vector<int64_t>{4, 2, 1}));
}

INSTANTIATE_TEST_SUITE_P(Backends, StepGraphForward,
                         ::testing::Values(std::string("emulated"), std::string("cuda")));

}  // namespace
}  // namespace v4
