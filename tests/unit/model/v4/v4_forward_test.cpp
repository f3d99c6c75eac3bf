// End-to-end properties of the batched CPU forward on the tiny synthetic model (6 layers: raw
// window, ratio-4 with indexer and ratio-128 layers, hash routing on 0..2; indexer top-k 16).
#include "model/v4/v4_forward.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>

#include "kernels/cpu/whole_row_draw.h"
#include "model/backend/cpu_backend.h"
#include "model/sampling/sampling.h"
#include "model/synthetic/synthetic_model.h"
#include "model/v4/v4_forward_model.h"
#include "tests/unit/common/test_models.h"

namespace v4 {
namespace {

using test_support::tokenizer_json;

// Vocabulary cut to the first 4096 tokens: the head and embedding dominate the tiny model's cost
// at the full 129280, and nothing tested here depends on the vocabulary size.
constexpr uint32_t kTestVocab = 4096;

// The tiny model for a recipe, written once per build tree (test_support::cached_test_model).
std::string tiny_model(const std::string& recipe) {
  SyntheticModelOptions o;
  o.config = *synthetic_preset("tiny");
  o.config.n_vocab = kTestVocab;
  o.recipe = *recipe_from_name(recipe);
  o.tokenizer_json = tokenizer_json();
  return test_support::cached_test_model("tiny-v4096-" + recipe + ".gguf", o);
}

class V4ForwardTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(tokenizer_json())) return;
    Result<std::unique_ptr<V4Model>> m = load_v4_model(tiny_model("f32"));
    if (m) model_ = std::move(*m).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << "tokenizer.json not found at " << tokenizer_json();
  }
  static const V4Weights& weights() { return model_->weights; }
  static uint32_t vocab() { return model_->weights.config.n_vocab; }

  // Logits of every position of `tokens`, fed in chunks of `chunk`.
  static std::vector<float> run(V4Forward& fwd, const std::vector<int32_t>& tokens, size_t chunk) {
    ContiguousKvState state(weights().config, fwd.backend());
    std::vector<float> all;
    for (size_t first = 0; first < tokens.size(); first += chunk) {
      const size_t n = std::min(chunk, tokens.size() - first);
      SequenceInput in{&state, std::span<const int32_t>(tokens).subspan(first, n), true};
      Result<ForwardOutput> out = fwd.forward({&in, 1});
      EXPECT_TRUE(out) << out.message();
      if (!out) return {};
      all.insert(all.end(), out->logits.begin(), out->logits.end());
    }
    return all;
  }

  static std::vector<int32_t> tokens(size_t n, uint32_t seed) {
    std::vector<int32_t> t{0};  // BOS
    for (size_t i = 1; i < n; ++i)
      t.push_back(static_cast<int32_t>((i * 7919 + seed * 104729) % kTestVocab));
    return t;
  }

  static V4Model* model_;
};

V4Model* V4ForwardTest::model_ = nullptr;

// Every token's arithmetic (projections, per-token streaming of KV rows and compressor state,
// attention over the same rows in the same order) is independent of how the prompt is chunked,
// so the logits must be bit-identical: tolerance 0.
TEST_F(V4ForwardTest, PrefillChunksAndDecodeGiveIdenticalLogits) {
  CpuBackend backend(2);
  V4Forward fwd(weights(), backend);
  const std::vector<int32_t> t = tokens(96, 1);
  const std::vector<float> whole = run(fwd, t, t.size());
  ASSERT_EQ(whole.size(), t.size() * vocab());
  for (size_t chunk : {1u, 7u, 64u}) {
    const std::vector<float> chunked = run(fwd, t, chunk);
    ASSERT_EQ(chunked.size(), whole.size());
    EXPECT_TRUE(chunked == whole) << "chunk " << chunk;
  }
}

// Tokens of other sequences only share matmuls, where each output is its own dot product of the
// token's own quantized row: a sequence's logits are bit-identical alone and in a batch.
TEST_F(V4ForwardTest, SequenceLogitsAreTheSameAloneAndInAMixedBatch) {
  CpuBackend backend(2);
  V4Forward fwd(weights(), backend);
  constexpr size_t kSeqs = 8;
  std::vector<std::vector<int32_t>> seqs;
  for (size_t s = 0; s < kSeqs; ++s) seqs.push_back(tokens(20 + 9 * s, static_cast<uint32_t>(s)));
  std::vector<std::unique_ptr<ContiguousKvState>> states;
  for (size_t s = 0; s < kSeqs; ++s) {
    states.push_back(std::make_unique<ContiguousKvState>(weights().config, backend));
  }
  std::vector<size_t> done(kSeqs, 0);
  std::vector<std::vector<float>> batched(kSeqs);
  // Steps mix prefill chunks of different sizes with single decode tokens.
  for (size_t step = 0;
       std::any_of(done.begin(), done.end(), [&](size_t d) { return d < 83; }) && step < 100;
       ++step) {
    std::vector<SequenceInput> inputs;
    std::vector<size_t> which;
    for (size_t s = 0; s < kSeqs; ++s) {
      if (done[s] >= seqs[s].size() || (step + s) % 3 == 0) continue;
      const size_t want = (s % 2 == 0 && done[s] > 0) ? 1 : 5 + s;
      const size_t n = std::min(want, seqs[s].size() - done[s]);
      inputs.push_back(
          {states[s].get(), std::span<const int32_t>(seqs[s]).subspan(done[s], n), true});
      which.push_back(s);
      done[s] += n;
    }
    if (inputs.empty()) continue;
    Result<ForwardOutput> out = fwd.forward(inputs);
    ASSERT_TRUE(out) << out.message();
    for (size_t i = 0; i < which.size(); ++i) {
      auto first = out->logits.begin() + out->first_row[i] * vocab();
      batched[which[i]].insert(batched[which[i]].end(), first, first + out->row_count[i] * vocab());
    }
  }
  for (size_t s = 0; s < kSeqs; ++s) {
    ASSERT_EQ(done[s], seqs[s].size());
    EXPECT_TRUE(run(fwd, seqs[s], seqs[s].size()) == batched[s]) << "sequence " << s;
  }
}

// Work is split by output element only, never by reduction: tolerance 0 across thread counts.
TEST_F(V4ForwardTest, ThreadCountDoesNotChangeLogits) {
  const std::vector<int32_t> t = tokens(40, 3);
  std::vector<float> reference;
  for (unsigned threads : {1u, 2u, 3u}) {
    CpuBackend backend(threads);
    V4Forward fwd(weights(), backend);
    const std::vector<float> logits = run(fwd, t, 16);
    if (reference.empty()) reference = logits;
    EXPECT_TRUE(logits == reference) << threads << " threads";
  }
}

// Beyond 4·top_k tokens a ratio-4 layer sees more compressed rows than the indexer keeps, so
// selection must drop rows — and still agree between prefill and decode.
TEST_F(V4ForwardTest, LongSequencesExerciseIndexerTopK) {
  const V4Config& c = weights().config;
  const size_t n = 4 * c.indexer_top_k + 40;
  CpuBackend backend(2);
  V4Forward fwd(weights(), backend);
  const std::vector<int32_t> t = tokens(n, 5);
  const std::vector<float> whole = run(fwd, t, n);
  const uint64_t ratio4_layers = std::count(c.compress_ratios.begin(), c.compress_ratios.end(), 4u);
  // Positions p with floor((p+1)/4) > top_k: p >= 4·(top_k+1) - 1.
  const uint64_t positions = n - (4 * (c.indexer_top_k + 1) - 1);
  EXPECT_EQ(fwd.stats().indexer_selections, positions * ratio4_layers);
  EXPECT_GT(fwd.stats().indexer_rows_dropped, 0u);
  EXPECT_TRUE(run(fwd, t, 1) == whole);
}

TEST_F(V4ForwardTest, GreedyGenerationIsDeterministic) {
  auto generate = [&] {
    CpuBackend backend(2);
    V4Forward fwd(weights(), backend);
    ContiguousKvState state(weights().config, backend);
    std::vector<int32_t> out = tokens(12, 7);
    SequenceInput in{&state, out};
    std::vector<int32_t> generated;
    for (int i = 0; i < 12; ++i) {
      Result<ForwardOutput> r = fwd.forward({&in, 1});
      EXPECT_TRUE(r);
      generated.push_back(argmax(r->logits));
      in.tokens = std::span<const int32_t>(&generated.back(), 1);
    }
    return generated;
  };
  const std::vector<int32_t> a = generate();
  EXPECT_EQ(a, generate());
  EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 1u);  // not stuck on one token
}

TEST_F(V4ForwardTest, RejectsBadInputs) {
  CpuBackend backend(1);
  V4Forward fwd(weights(), backend);
  ContiguousKvState state(weights().config, backend);
  const std::vector<int32_t> bad{0, static_cast<int32_t>(vocab())};
  SequenceInput in{&state, bad};
  Result<ForwardOutput> r = fwd.forward({&in, 1});
  ASSERT_FALSE(r);
  EXPECT_NE(r.message().find("outside the vocabulary"), std::string::npos);
  const std::vector<int32_t> ok{0};
  SequenceInput twice[2] = {{&state, ok}, {&state, ok}};
  EXPECT_FALSE(fwd.forward(twice));
}

// A step mixing the kinds of output: every row's logits, candidates instead of logits, none
// at all (a chunk that does not sample) and the last row's logits. Each sequence gets what a
// step of its own gives: the same logits, and candidates that are the host's selection (and
// normalizer) over the logits its last row has alone.
TEST_F(V4ForwardTest, CandidatesAndNoLogitsRowsBesideLogitsRows) {
  CpuBackend backend(2);
  V4Forward fwd(weights(), backend);
  std::vector<std::vector<int32_t>> seqs;
  for (uint32_t s = 0; s < 4; ++s) seqs.push_back(tokens(9 + 4 * s, s));
  std::vector<std::unique_ptr<ContiguousKvState>> states;
  for (size_t s = 0; s < 4; ++s) {
    states.push_back(std::make_unique<ContiguousKvState>(weights().config, backend));
  }
  std::vector<SequenceInput> inputs;
  for (size_t s = 0; s < 4; ++s) inputs.push_back({states[s].get(), seqs[s]});
  inputs[0].all_logits = true;
  inputs[1].top_candidates = 5;
  inputs[1].candidate_logprobs = true;
  inputs[2].no_logits = true;
  Result<ForwardOutput> out = fwd.forward(inputs);
  ASSERT_TRUE(out) << out.message();
  EXPECT_EQ(out->row_count, (std::vector<size_t>{seqs[0].size(), 0, 0, 1}));
  EXPECT_EQ(out->logits.size(), (seqs[0].size() + 1) * vocab());
  ASSERT_EQ(out->candidate_k, 5u);
  const std::vector<float> alone0 = run(fwd, seqs[0], seqs[0].size());
  EXPECT_TRUE(std::equal(alone0.begin(), alone0.end(), out->logits.begin()));
  const std::vector<float> alone3 = run(fwd, seqs[3], seqs[3].size());
  EXPECT_TRUE(std::equal(alone3.end() - vocab(), alone3.end(),
                         out->logits.begin() + out->first_row[3] * vocab()));
  const std::vector<float> alone1 = run(fwd, seqs[1], seqs[1].size());
  const float* last = alone1.data() + alone1.size() - vocab();
  int32_t ids[5];
  float values[5];
  kernels::select_top_candidates(last, vocab(), 5, ids, values);
  for (size_t j = 0; j < 5; ++j) {
    EXPECT_EQ(out->candidate_ids[1 * 5 + j], ids[j]) << j;
    EXPECT_EQ(out->candidate_logits[1 * 5 + j], values[j]) << j;
    EXPECT_EQ(values[j], last[ids[j]]);
  }
  EXPECT_EQ(out->log_normalizer[1], kernels::log_normalizer(last, vocab(), values[0]));
  EXPECT_EQ(values[0], *std::max_element(last, last + vocab()));
  // Each state advanced by its chunk, rows or not.
  for (size_t s = 0; s < 4; ++s) EXPECT_EQ(states[s]->n_past(), seqs[s].size());

  // Asking for two kinds of output at once, or for too many candidates, is refused.
  ContiguousKvState state(weights().config, backend);
  const std::vector<int32_t> ok{0};
  for (auto bad : {SequenceInput{&state, ok, true, false, 0, false, true},
                   SequenceInput{&state, ok, false, false, 3, false, true},
                   SequenceInput{&state, ok, true, false, 3},
                   SequenceInput{&state, ok, false, false, kMaxTopCandidates + 1}}) {
    Result<ForwardOutput> r = fwd.forward({&bad, 1});
    EXPECT_FALSE(r);
  }
}

// A drawn row (SequenceInput::draw) returns the token the host's whole-row draw takes from that
// sequence's row computed alone, and its logit; with top_candidates its candidates too.
TEST_F(V4ForwardTest, DrawnRowsBesideLogitsRows) {
  CpuBackend backend(2);
  V4Forward fwd(weights(), backend);
  std::vector<std::vector<int32_t>> seqs;
  for (uint32_t s = 0; s < 3; ++s) seqs.push_back(tokens(7 + 3 * s, 20 + s));
  std::vector<std::unique_ptr<ContiguousKvState>> states;
  std::vector<SequenceInput> inputs;
  for (size_t s = 0; s < 3; ++s) {
    states.push_back(std::make_unique<ContiguousKvState>(weights().config, backend));
    inputs.push_back({states[s].get(), seqs[s]});
  }
  const kernels::RowDrawParams params[] = {{0.9f, 1.0f, 0.0f, 0, 77},
                                           {0.3f, 0.8f, 0.02f, 0, 1234567}};
  inputs[1].draw = params[0];
  inputs[2].draw = params[1];
  inputs[2].top_candidates = 3;
  inputs[2].candidate_logprobs = true;
  Result<ForwardOutput> out = fwd.forward(inputs);
  ASSERT_TRUE(out) << out.message();
  EXPECT_EQ(out->row_count, (std::vector<size_t>{1, 0, 0}));
  EXPECT_EQ(out->drawn_tokens[0], -1);
  for (size_t s = 1; s < 3; ++s) {
    const std::vector<float> alone = run(fwd, seqs[s], seqs[s].size());
    const std::span<const float> last(alone.data() + alone.size() - vocab(), vocab());
    const kernels::RowDrawParams& p = params[s - 1];
    const int32_t want = kernels::draw_whole_row(last, p.filters, p.bits53);
    EXPECT_EQ(out->drawn_tokens[s], want) << s;
    EXPECT_EQ(out->drawn_logits[s], last[static_cast<size_t>(want)]) << s;
  }
  const std::vector<float> alone2 = run(fwd, seqs[2], seqs[2].size());
  int32_t ids[3];
  float values[3];
  kernels::select_top_candidates(alone2.data() + alone2.size() - vocab(), vocab(), 3, ids, values);
  for (size_t j = 0; j < 3; ++j) EXPECT_EQ(out->candidate_ids[2 * 3 + j], ids[j]) << j;

  // A draw needs a temperature and the last row alone.
  ContiguousKvState state(weights().config, backend);
  const std::vector<int32_t> ok{0};
  SequenceInput cold{&state, ok}, all{&state, ok, true}, none{&state, ok};
  cold.draw = kernels::RowDrawParams{};
  all.draw = params[0];
  none.no_logits = true;
  none.draw = params[0];
  for (const SequenceInput& bad : {cold, all, none}) EXPECT_FALSE(fwd.forward({&bad, 1}));
}

// Quantized recipes of the same seeded float weights: the distance to the f32 recipe measures
// the whole quantized path (weight formats and Q8 activations). Bounds are set from the formats'
// resolution, not from our own outputs: see the per-recipe comment.
TEST_F(V4ForwardTest, QuantizedRecipesStayCloseToF32) {
  CpuBackend backend(2);
  V4Forward f32(weights(), backend);
  const std::vector<int32_t> t = tokens(48, 9);
  const std::vector<float> ref = run(f32, t, t.size());
  struct Bound {
    const char* recipe;
    double max_rel_rms;  // RMS(Δlogit) / RMS(logit) over all positions
    double min_top1;     // fraction of positions with the same argmax
  };
  // Q8_0 attention and Q4_K experts keep ~1-2% relative error per matmul, 2-bit experts ~15-25%;
  // errors compound over 6 layers and the random logits of a synthetic model have small margins.
  for (const Bound& b :
       {Bound{"ds4-q4", 0.15, 0.6}, Bound{"ds4-q2", 0.5, 0.2}, Bound{"lcpp-mxfp4", 0.25, 0.5}}) {
    Result<std::unique_ptr<V4Model>> m = load_v4_model(tiny_model(b.recipe));
    ASSERT_TRUE(m) << m.message();
    V4Forward q((*m)->weights, backend);
    const std::vector<float> got = run(q, t, t.size());
    ASSERT_EQ(got.size(), ref.size());
    double num = 0, den = 0;
    size_t same = 0;
    for (size_t p = 0; p < t.size(); ++p) {
      const float* a = &ref[p * vocab()];
      const float* g = &got[p * vocab()];
      for (size_t i = 0; i < vocab(); ++i) {
        num += (a[i] - g[i]) * double(a[i] - g[i]);
        den += a[i] * double(a[i]);
      }
      same += argmax({a, vocab()}) == argmax({g, vocab()});
    }
    const double rel = std::sqrt(num / den), top1 = double(same) / t.size();
    std::printf("%s: relative RMS %.4f, top-1 agreement %.3f\n", b.recipe, rel, top1);
    EXPECT_LT(rel, b.max_rel_rms) << b.recipe;
    EXPECT_GE(top1, b.min_top1) << b.recipe;
  }
}

}  // namespace
}  // namespace v4

namespace v4 {
namespace {

// Wraps the local dispatcher and notes each MoE layer that goes through the expert seam, the
// way an expert-parallel dispatcher would cut in.
class RecordingDispatcher final : public ExpertDispatcher {
 public:
  explicit RecordingDispatcher(Backend& backend) : local_(backend) {}
  void dispatch_combine(uint32_t layer, const ExpertFfnWeights& experts, const RoutedTokens& tokens,
                        float* out, FunctionRef<void()> meanwhile) override {
    layers.push_back(layer);
    pairs += tokens.n_tokens * tokens.k;
    local_.dispatch_combine(layer, experts, tokens, out, meanwhile);
  }
  std::vector<uint32_t> layers;
  int64_t pairs = 0;

 private:
  LocalExpertDispatcher local_;
};

// Every MoE layer's routed experts go through the ExpertDispatcher given to the forward, once per
// layer per step with every (token, expert) pair, and the logits are those of the default path.
TEST_F(V4ForwardTest, RoutedExpertsGoThroughTheDispatcherSeam) {
  CpuBackend backend(2);
  RecordingDispatcher seam(backend);
  V4Forward through_seam(weights(), backend, &seam);
  V4Forward plain(weights(), backend);
  const std::vector<int32_t> t = tokens(40, 3);
  const std::vector<float> expected = run(plain, t, t.size());
  const std::vector<float> got = run(through_seam, t, t.size());
  ASSERT_FALSE(got.empty());
  EXPECT_TRUE(got == expected);
  const uint32_t layers = weights().config.n_layer;
  ASSERT_EQ(seam.layers.size(), layers);
  for (uint32_t l = 0; l < layers; ++l) EXPECT_EQ(seam.layers[l], l);
  uint64_t selections = 0;
  for (const auto& per_layer : through_seam.stats().expert_selections) {
    for (uint64_t c : per_layer) selections += c;
  }
  EXPECT_EQ(static_cast<uint64_t>(seam.pairs), selections);
  EXPECT_GT(seam.pairs, 0);
}

}  // namespace
}  // namespace v4
