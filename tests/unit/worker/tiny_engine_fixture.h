// Shared fixture of the engine tests: the tiny synthetic model (6 layers: raw window, ratio 4
// with indexer, ratio 128) and helpers that run requests through an EngineCore to completion.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <set>

#include "model/backend/cpu_backend.h"
#include "model/synthetic/synthetic_model.h"
#include "model/v4/v4_forward_model.h"
#include "tests/unit/common/test_models.h"
#include "worker/engine_core.h"

namespace v4 {

using test_support::tokenizer_json;

// Vocabulary cut to 4096 tokens as in the model tests: the head dominates the tiny model's cost
// at the full vocabulary, and nothing here depends on its size.
constexpr uint32_t kTestVocab = 4096;

// The tiny model's options at the test vocabulary.
inline SyntheticModelOptions tiny_model_options() {
  SyntheticModelOptions o;
  o.config = *synthetic_preset("tiny");
  o.config.n_vocab = kTestVocab;
  o.tokenizer_json = tokenizer_json();
  return o;
}

inline std::string tiny_model() {
  return test_support::cached_test_model("tiny-v4096-f32.gguf", tiny_model_options());
}

using Streams = std::map<RequestId, std::vector<GenerationEvent>>;

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(tokenizer_json())) return;
    Result<std::unique_ptr<V4Model>> m = load_v4_model(tiny_model());
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

  static std::vector<int32_t> prompt(size_t n, uint32_t seed) {
    std::vector<int32_t> t{0};  // BOS
    for (size_t i = 1; i < n; ++i)
      t.push_back(static_cast<int32_t>((i * 7919 + seed * 104729) % kTestVocab));
    return t;
  }

  static EngineOptions options() {
    EngineOptions o;
    o.page_tokens = 128;
    o.total_pages = 64;
    o.max_context = 1024;
    o.max_batch_tokens = 64;
    o.max_seqs = 32;
    return o;
  }

  // Runs every request through one EngineCore to completion; ids follow request order.
  static Streams run(const EngineOptions& o, const std::vector<GenerationRequest>& requests,
                     EngineStats* stats = nullptr) {
    CpuBackend backend(2);
    return run_on(weights(), backend, o, requests, stats);
  }

  // The same over `backend`, whose memory holds `w` (the weights a device backend was given).
  static Streams run_on(const V4Weights& w, Backend& backend, const EngineOptions& o,
                        const std::vector<GenerationRequest>& requests,
                        EngineStats* stats = nullptr) {
    EngineCore core(w, backend, o);
    Streams streams;
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_TRUE(core.add(i + 1, requests[i]));
    }
    for (int step = 0; core.has_work() && step < 10000; ++step) {
      for (GenerationEvent& e : core.step()) streams[e.id].push_back(std::move(e));
    }
    EXPECT_FALSE(core.has_work());
    EXPECT_EQ(core.scheduler().allocator().used_count(), 0u) << "KV pages leaked";
    EXPECT_EQ(core.worker().live_sequences(), 0u);
    if (stats) *stats = core.stats();
    return streams;
  }

  static std::vector<int32_t> tokens_of(const std::vector<GenerationEvent>& events) {
    std::vector<int32_t> t;
    for (const GenerationEvent& e : events) t.push_back(e.token);
    return t;
  }

  static std::vector<GenerationRequest> mixed_requests(size_t n, bool sampled) {
    std::vector<GenerationRequest> rs;
    for (size_t i = 0; i < n; ++i) {
      GenerationRequest r;
      r.prompt = prompt(3 + (i * 37) % 60, static_cast<uint32_t>(i));
      r.sampling.max_tokens = 3 + static_cast<uint32_t>(i % 4);
      r.sampling.logprobs = true;
      if (sampled) {
        r.sampling.temperature = 0.9f;
        r.sampling.top_k = 40;
        r.sampling.top_p = 0.95f;
        r.sampling.seed = 1000 + i;
      }
      rs.push_back(std::move(r));
    }
    return rs;
  }

  // Each request's stream alone (its own engine) against all of them in one engine.
  static void expect_batch_invariant(bool sampled) {
    const std::vector<GenerationRequest> rs = mixed_requests(32, sampled);
    EngineStats stats;
    const Streams together = run(options(), rs, &stats);
    // Chunked prefill interleaved with decodes really happened: more tokens than one chunk.
    EXPECT_GT(static_cast<double>(stats.step_sequences) / static_cast<double>(stats.steps), 4.0);
    for (size_t i = 0; i < rs.size(); ++i) {
      const Streams alone = run(options(), {rs[i]});
      const std::vector<GenerationEvent>& a = alone.at(1);
      const std::vector<GenerationEvent>& b = together.at(i + 1);
      ASSERT_EQ(tokens_of(a), tokens_of(b)) << "request " << i;
      for (size_t k = 0; k < a.size(); ++k) EXPECT_EQ(a[k].logprob, b[k].logprob);
      EXPECT_EQ(b.back().finish, FinishReason::kLength);
      EXPECT_EQ(b.size(), rs[i].sampling.max_tokens);
    }
  }

  static V4Model* model_;
};

inline V4Model* EngineTest::model_ = nullptr;

}  // namespace v4
