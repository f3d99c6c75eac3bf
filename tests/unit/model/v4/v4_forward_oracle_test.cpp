// The CPU forward against DeepSeek's PyTorch reference (inference/model.py) run on the same
// synthetic weights. Fixtures and how they were produced: tests/oracle/README_v4_forward.md.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/backend/cpu_backend.h"
#include "model/synthetic/synthetic_model.h"
#include "model/v4/v4_forward.h"
#include "model/v4/v4_forward_model.h"
#include "tests/unit/common/test_models.h"

namespace v4 {
namespace {

using test_support::tokenizer_json;

// The fixtures' model: tiny preset, vocabulary cut to 4096, f32 recipe, seed 1234 (the
// generator's default); `mtp` adds ds4's separate MTP file. Written once per build tree.
std::vector<std::string> fixture_model(bool mtp) {
  const std::filesystem::path dir = test_support::test_models_dir();
  const std::string stem = mtp ? "tiny-v4096-f32-ds4mtp" : "tiny-v4096-f32";
  const std::filesystem::path main = dir / (stem + ".gguf");
  const std::filesystem::path side = dir / (stem + "-mtp.gguf");
  std::vector<std::string> paths{main.string()};
  if (mtp) paths.push_back(side.string());
  if (std::filesystem::exists(paths.back())) return paths;
  // Written under a private name and renamed, so concurrent test processes never read a
  // partial file.
  const std::filesystem::path tmp = dir / ("tmp" + std::to_string(::getpid()));
  std::filesystem::create_directories(tmp);
  SyntheticModelOptions o;
  o.config = *synthetic_preset("tiny");
  o.config.n_vocab = 4096;
  o.recipe = Recipe::kF32;
  o.mtp = mtp ? MtpLayout::kDs4 : MtpLayout::kNone;
  o.tokenizer_json = tokenizer_json();
  o.out_path = (tmp / (stem + ".gguf")).string();
  if (write_synthetic_model(o)) {
    if (mtp) std::filesystem::rename(tmp / side.filename(), side);
    std::filesystem::rename(tmp / main.filename(), main);
  }
  std::filesystem::remove_all(tmp);
  return paths;
}

nlohmann::json load_golden(const std::string& name) {
  std::ifstream in(std::string(V4_SOURCE_DIR) + "/tests/oracle/" + name);
  EXPECT_TRUE(in.good()) << name;
  return in.good() ? nlohmann::json::parse(in) : nlohmann::json();
}

// Logits are compared within 1e-3 absolute (logits here span about ±5). Both sides compute in
// fp32 with different summation orders (~2e-6 on logits); in addition one cached KV value lies
// within that noise of an FP8 rounding midpoint and rounds to neighbouring grid points on the two
// sides (README_v4_forward.md), which moves later logits by up to 1.5e-4. Formula errors (RoPE,
// sink, compressor, indexer) move them by more than 1e-2.
constexpr double kLogitTolerance = 1e-3;

// Compares our logits rows (vocab each) with the golden top-20, probe ids and logsumexp.
void expect_matches(const nlohmann::json& golden, const std::vector<float>& logits, uint32_t vocab,
                    const char* what) {
  const std::vector<int32_t> probe = golden["probe_ids"].get<std::vector<int32_t>>();
  const size_t n = golden["positions"].size();
  ASSERT_EQ(logits.size(), n * vocab);
  double max_diff = 0;
  size_t top1_same = 0;
  for (size_t p = 0; p < n; ++p) {
    const nlohmann::json& row = golden["positions"][p];
    const float* ours = &logits[p * vocab];
    const auto top_ids = row["top_ids"].get<std::vector<int32_t>>();
    const auto top_logits = row["top_logits"].get<std::vector<double>>();
    const auto probe_logits = row["probe_logits"].get<std::vector<double>>();
    for (size_t i = 0; i < top_ids.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(ours[top_ids[i]] - top_logits[i]));
    }
    for (size_t i = 0; i < probe.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(ours[probe[i]] - probe_logits[i]));
    }
    double sum = 0, mx = *std::max_element(ours, ours + vocab);
    for (uint32_t i = 0; i < vocab; ++i) sum += std::exp(ours[i] - mx);
    EXPECT_NEAR(mx + std::log(sum), row["logsumexp"].get<double>(), kLogitTolerance) << p;
    const int32_t best = static_cast<int32_t>(std::max_element(ours, ours + vocab) - ours);
    // Top-1 must agree unless the reference's own margin is inside the tolerance.
    const bool clear = top_logits[0] - top_logits[1] > kLogitTolerance;
    if (best == top_ids[0]) {
      ++top1_same;
    } else {
      EXPECT_FALSE(clear) << what << " position " << p << ": top-1 " << best << " vs "
                          << top_ids[0];
    }
  }
  std::printf(
      "%s vs reference: %zu positions, max |dlogit| %.3g (top-20 and %zu probe ids), "
      "top-1 agreement %zu/%zu\n",
      what, n, max_diff, probe.size(), top1_same, n);
  EXPECT_LT(max_diff, kLogitTolerance) << what;
}

class V4ForwardOracle : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(tokenizer_json())) GTEST_SKIP() << "no tokenizer.json";
  }
};

// 64 prompt tokens in one prefill chunk, then one token per step (the reference's schedule).
TEST_F(V4ForwardOracle, MainModelMatchesDeepSeekReference) {
  const nlohmann::json golden = load_golden("v4_tiny_f32_golden.json");
  ASSERT_FALSE(golden.is_null());
  const std::vector<int32_t> tokens = golden["tokens"].get<std::vector<int32_t>>();
  const size_t prompt = golden["prompt_len"].get<size_t>();
  Result<std::unique_ptr<V4Model>> model = load_v4_model(fixture_model(false)[0]);
  ASSERT_TRUE(model) << model.message();
  CpuBackend backend(2);
  V4Forward fwd((*model)->weights, backend);
  ContiguousKvState state((*model)->weights.config, backend);
  std::vector<float> logits;
  for (size_t first = 0; first < tokens.size(); first += first == 0 ? prompt : 1) {
    const size_t n = first == 0 ? prompt : 1;
    SequenceInput seq{&state, std::span<const int32_t>(tokens).subspan(first, n), true};
    Result<ForwardOutput> out = fwd.forward({&seq, 1});
    ASSERT_TRUE(out) << out.message();
    logits.insert(logits.end(), out->logits.begin(), out->logits.end());
  }
  expect_matches(golden, logits, (*model)->weights.config.n_vocab, "main model");
}

// The MTP block (spec §3.7) on pairs (main HC state after the last layer at t, token t+1), fed
// one pair per step into its own raw window; the reference runs them as one prefill.
TEST_F(V4ForwardOracle, MtpBlockMatchesDeepSeekReference) {
  const std::vector<std::string> paths = fixture_model(true);
  const nlohmann::json golden = load_golden("v4_tiny_f32_mtp_golden.json");
  ASSERT_FALSE(golden.is_null());
  const std::vector<int32_t> tokens = golden["tokens"].get<std::vector<int32_t>>();
  Result<std::unique_ptr<V4Model>> model = load_v4_model(paths[0], paths[1]);
  ASSERT_TRUE(model) << model.message();
  const V4Config& c = (*model)->weights.config;
  CpuBackend backend(2);
  V4Forward fwd((*model)->weights, backend);
  ContiguousKvState state(c, backend), mtp_state(c, backend, true);
  SequenceInput seq{&state, tokens, true, true};
  Result<ForwardOutput> out = fwd.forward({&seq, 1});
  ASSERT_TRUE(out) << out.message();
  const size_t flat = size_t{c.n_hc} * c.n_embd;
  std::vector<float> logits;
  for (size_t t = 0; t + 1 < tokens.size(); ++t) {
    Result<std::vector<float>> draft = fwd.mtp_draft(
        mtp_state, std::span<const float>(&out->hidden[t * flat], flat), tokens[t + 1]);
    ASSERT_TRUE(draft) << draft.message();
    logits.insert(logits.end(), draft->begin(), draft->end());
  }
  expect_matches(golden, logits, c.n_vocab, "MTP block");
}

}  // namespace
}  // namespace v4
