// Binding the tensors of synthetic models: every recipe's types, split files, both MTP layouts,
// and one-line errors naming the tensor when a file does not match its config.
#include "model/v4/v4_weights.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "model/backend/cpu_backend.h"
#include "model/gguf/gguf_reader.h"
#include "model/synthetic/synthetic_model.h"
#include "model/v4/v4_forward.h"
#include "model/v4/v4_forward_model.h"
#include "tests/unit/common/test_models.h"

namespace v4 {
namespace {

using test_support::tokenizer_json;

class V4WeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(tokenizer_json())) GTEST_SKIP() << "no tokenizer.json";
    dir_ = std::filesystem::temp_directory_path() /
           ("v4_weights_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Tiny preset with a 1024-token vocabulary (binding does not depend on the vocabulary size).
  std::vector<std::string> write(Recipe recipe, MtpLayout mtp, uint64_t split_bytes = 0,
                                 uint32_t layers = 0) {
    SyntheticModelOptions o;
    o.config = *synthetic_preset("tiny", layers);
    o.config.n_vocab = 1024;
    o.recipe = recipe;
    o.mtp = mtp;
    o.max_split_bytes = split_bytes;
    o.tokenizer_json = tokenizer_json();
    o.out_path = (dir_ / ("model" + std::to_string(layers) + ".gguf")).string();
    Result<std::vector<std::string>> paths = write_synthetic_model(o);
    EXPECT_TRUE(paths) << paths.message();
    return paths ? *paths : std::vector<std::string>{};
  }

  // The f32 tiny model with its MTP block in `layout`, loaded (ds4's layout: the side file too).
  Result<std::unique_ptr<V4Model>> load_with_mtp(MtpLayout layout) {
    const std::vector<std::string> paths = write(Recipe::kF32, layout);
    if (paths.empty()) return Status::error("the model was not written");
    return load_v4_model(paths.at(0), layout == MtpLayout::kDs4 ? paths.at(1) : "");
  }

  std::filesystem::path dir_;
};

TEST_F(V4WeightsTest, BindsEveryRecipe) {
  for (Recipe r : {Recipe::kF32, Recipe::kDs4Q2, Recipe::kDs4Q4, Recipe::kLlamaCppMxfp4}) {
    const std::vector<std::string> paths = write(r, MtpLayout::kNone);
    Result<std::unique_ptr<V4Model>> m = load_v4_model(paths.at(0));
    ASSERT_TRUE(m) << recipe_name(r) << ": " << m.message();
    const V4Weights& w = (*m)->weights;
    ASSERT_EQ(w.layers.size(), 6u);
    EXPECT_FALSE(w.mtp.has_value());
    EXPECT_TRUE(w.layers[0].hash_routed());
    EXPECT_EQ(w.layers[0].tid2eid_width, 6u);
    EXPECT_FALSE(w.layers[3].hash_routed());
    EXPECT_EQ(w.layers[3].exp_probs_b.size(), 16u);
    EXPECT_EQ(w.layers[2].compressor.width, 128u);  // ratio 4: two halves of head_dim 64
    EXPECT_EQ(w.layers[3].compressor.width, 64u);   // ratio 128
    EXPECT_TRUE(w.layers[2].indexer.q_b.present());
    EXPECT_FALSE(w.layers[3].indexer.q_b.present());
    EXPECT_EQ(w.layers[5].gate_exps.n_mats, 16);
    EXPECT_EQ(w.layers[2].compressor.ape.size(), 4u * 128u);
  }
}

TEST_F(V4WeightsTest, BindsSplitFiles) {
  const std::vector<std::string> paths = write(Recipe::kDs4Q2, MtpLayout::kNone, 4ull << 20);
  ASSERT_GT(paths.size(), 1u);
  Result<std::unique_ptr<V4Model>> m = load_v4_model(paths.at(0));
  ASSERT_TRUE(m) << m.message();
  EXPECT_EQ((*m)->weights.layers.size(), 6u);
}

// Both MTP layouts bind, and the MTP block drafts finite logits from a main-model HC state.
TEST_F(V4WeightsTest, BindsAndRunsBothMtpLayouts) {
  for (MtpLayout layout : {MtpLayout::kDs4, MtpLayout::kLlamaCpp}) {
    Result<std::unique_ptr<V4Model>> m = load_with_mtp(layout);
    ASSERT_TRUE(m) << m.message();
    const V4Weights& w = (*m)->weights;
    ASSERT_TRUE(w.mtp.has_value());
    EXPECT_EQ(w.mtp->eh_proj.present(), layout == MtpLayout::kLlamaCpp);
    EXPECT_EQ(w.mtp->e_proj.present(), layout == MtpLayout::kDs4);
    CpuBackend backend(2);
    V4Forward fwd(w, backend);
    ContiguousKvState state(w.config, backend, true);
    const std::vector<int32_t> prompt{0, 17, 99, 512};
    SequenceInput in{&state, prompt, false, true};
    Result<ForwardOutput> out = fwd.forward({&in, 1});
    ASSERT_TRUE(out) << out.message();
    ASSERT_EQ(out->hidden.size(), size_t{w.config.n_hc} * w.config.n_embd);
    ContiguousKvState mtp_state(w.config, backend, true);
    Result<std::vector<float>> draft = fwd.mtp_draft(mtp_state, out->hidden, 7);
    ASSERT_TRUE(draft) << draft.message();
    ASSERT_EQ(draft->size(), w.config.n_vocab);
    for (float v : *draft) ASSERT_TRUE(std::isfinite(v));
    EXPECT_EQ(mtp_state.n_past(), 1u);
  }
}

// Several (H, token) pairs in one MTP forward give, bit for bit, what one call per pair gives:
// the last pair's logits and output HC state, and the same window length (both layouts: the
// split e/h projections and the concatenated eh_proj).
TEST_F(V4WeightsTest, MtpForwardOfSeveralPairsEqualsOneCallPerPair) {
  for (MtpLayout layout : {MtpLayout::kDs4, MtpLayout::kLlamaCpp}) {
    Result<std::unique_ptr<V4Model>> m = load_with_mtp(layout);
    ASSERT_TRUE(m) << m.message();
    const V4Weights& w = (*m)->weights;
    CpuBackend backend(2);
    V4Forward fwd(w, backend);
    const size_t flat = size_t{w.config.n_hc} * w.config.n_embd;
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> hidden(3 * flat);
    for (float& v : hidden) v = normal(rng);
    const std::vector<int32_t> tokens{7, 300, 41};
    ContiguousKvState one_by_one(w.config, backend, true), together(w.config, backend, true);
    std::vector<float> state_one, state_together;
    Result<std::vector<float>> want(std::vector<float>{});
    for (size_t i = 0; i < tokens.size(); ++i) {
      const bool last = i + 1 == tokens.size();
      want = fwd.mtp_draft(one_by_one, std::span<const float>(hidden).subspan(i * flat, flat),
                           tokens[i], last ? &state_one : nullptr, last);
      ASSERT_TRUE(want) << want.message();
    }
    Result<std::vector<float>> got =
        fwd.mtp_forward(together, hidden, tokens, &state_together, true);
    ASSERT_TRUE(got) << got.message();
    EXPECT_EQ(*got, *want);
    EXPECT_EQ(state_together, state_one);
    EXPECT_EQ(together.n_past(), 3u);
    // More pairs than one forward takes, or hidden rows that do not match the tokens: errors.
    const std::vector<int32_t> five{1, 2, 3, 4, 5};
    EXPECT_FALSE(fwd.mtp_forward(together, std::vector<float>(5 * flat), five, nullptr, false));
    EXPECT_FALSE(fwd.mtp_forward(together, hidden, five, nullptr, false));
  }
}

// The logits of a short prompt through the CPU forward.
std::vector<float> prompt_logits(const V4Weights& w) {
  CpuBackend backend(2);
  V4Forward fwd(w, backend);
  ContiguousKvState state(w.config, backend, false);
  const std::vector<int32_t> prompt{3, 17, 99, 512, 8};
  SequenceInput in{&state, prompt, false, true};
  Result<ForwardOutput> out = fwd.forward({&in, 1});
  EXPECT_TRUE(out) << out.message();
  return out ? out->logits : std::vector<float>{};
}

// A model cut to its first n layers is the model a file of n layers holds (the synthetic tensors
// are seeded by name, so the 2- and 4-layer files hold the 6-layer file's first layers): the
// same config, and the same logits bit for bit. 2 layers cut into the hash-routed ones.
TEST_F(V4WeightsTest, FirstLayersAreTheModelOfAFileWithThatManyLayers) {
  Result<std::unique_ptr<V4Model>> six = load_v4_model(write(Recipe::kF32, MtpLayout::kNone).at(0));
  ASSERT_TRUE(six) << six.message();
  for (uint32_t n : {2u, 4u}) {
    Result<std::unique_ptr<V4Model>> file =
        load_v4_model(write(Recipe::kF32, MtpLayout::kNone, 0, n).at(0));
    ASSERT_TRUE(file) << file.message();
    const V4Weights cut = first_layers((*six)->weights, n);
    const V4Config& want = (*file)->weights.config;
    EXPECT_EQ(cut.config.n_layer, want.n_layer);
    EXPECT_EQ(cut.config.n_hash_layers, want.n_hash_layers);
    EXPECT_EQ(cut.config.compress_ratios, want.compress_ratios);
    ASSERT_TRUE(cut.config.validate());
    ASSERT_EQ(cut.layers.size(), n);
    const std::vector<float> logits = prompt_logits(cut);
    ASSERT_FALSE(logits.empty());
    EXPECT_EQ(logits, prompt_logits((*file)->weights)) << n << " layers";
  }
  // Not fewer than one layer, not more than the model has.
  EXPECT_EQ(first_layers((*six)->weights, 0).config.n_layer, 1u);
  EXPECT_EQ(first_layers((*six)->weights, 9).layers.size(), 6u);
}

TEST_F(V4WeightsTest, MismatchedConfigNamesTheTensor) {
  const std::vector<std::string> paths = write(Recipe::kF32, MtpLayout::kNone);
  Result<GgufFile> file = GgufFile::open(paths.at(0));
  ASSERT_TRUE(file);
  V4Config c = *read_v4_config(*file);
  c.q_lora_rank = 64;  // the file has 128
  Result<V4Weights> w = bind_v4_weights(*file, c);
  ASSERT_FALSE(w);
  EXPECT_NE(w.message().find("blk.0.attn_q_a.weight: expected dims [256, 64], found [256, 128]"),
            std::string::npos)
      << w.message();
  EXPECT_EQ(w.message().find('\n'), std::string::npos);
  c = *read_v4_config(*file);
  c.n_layer = 7;  // one layer more than the file holds
  c.compress_ratios.push_back(4);
  w = bind_v4_weights(*file, c);
  ASSERT_FALSE(w);
  EXPECT_NE(w.message().find("tensor blk.6.hc_attn_fn.weight: missing"), std::string::npos)
      << w.message();
}

}  // namespace
}  // namespace v4
