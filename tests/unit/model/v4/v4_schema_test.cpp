// The V4 tensor list against the counts and shapes that spec §1 and §5.4 state for the real
// model.
#include "model/v4/v4_schema.h"

#include <gtest/gtest.h>

#include <map>

#include "model/synthetic/synthetic_model.h"
#include "model/v4/v4_dtype_rules.h"

namespace v4 {
namespace {

V4Config real_config() {
  V4Config c;
  c.compress_ratios = v4_default_compress_ratios(c.n_layer);
  return c;
}

std::map<std::string, TensorSpec> by_name(const std::vector<TensorSpec>& specs) {
  std::map<std::string, TensorSpec> out;
  for (const TensorSpec& s : specs) out.emplace(s.name, s);
  return out;
}

TEST(V4Schema, DefaultRatiosFollowTheSpecPattern) {
  const std::vector<uint32_t> r = v4_default_compress_ratios(43);
  // §1: layers 0,1 uncompressed; even layers 2..42 ratio 4 (21); odd 3..41 ratio 128 (20).
  EXPECT_EQ(r[0], 0u);
  EXPECT_EQ(r[1], 0u);
  EXPECT_EQ(r[42], 4u);
  EXPECT_EQ(std::count(r.begin(), r.end(), 4u), 21);
  EXPECT_EQ(std::count(r.begin(), r.end(), 128u), 20);
}

TEST(V4Schema, RealModelShapesMatchSpecTable) {
  const auto t = by_name(v4_main_tensors(real_config(), MtpLayout::kNone));
  using D = std::vector<uint64_t>;
  // Shapes copied from the spec §5.4 table (GGUF order, ne0 first).
  EXPECT_EQ(t.at("token_embd.weight").dims, (D{4096, 129280}));
  EXPECT_EQ(t.at("output_hc_fn.weight").dims, (D{16384, 4}));
  EXPECT_EQ(t.at("blk.0.hc_attn_fn.weight").dims, (D{16384, 24}));
  EXPECT_EQ(t.at("blk.0.attn_q_b.weight").dims, (D{1024, 32768}));
  EXPECT_EQ(t.at("blk.0.attn_output_a.weight").dims, (D{4096, 8192}));
  EXPECT_EQ(t.at("blk.0.attn_output_b.weight").dims, (D{8192, 4096}));
  EXPECT_EQ(t.at("blk.2.attn_compressor_ape.weight").dims, (D{1024, 4}));
  EXPECT_EQ(t.at("blk.3.attn_compressor_ape.weight").dims, (D{512, 128}));
  EXPECT_EQ(t.at("blk.3.attn_compressor_kv.weight").dims, (D{4096, 512}));
  EXPECT_EQ(t.at("blk.2.indexer.attn_q_b.weight").dims, (D{1024, 8192}));
  EXPECT_EQ(t.at("blk.2.indexer_compressor_ape.weight").dims, (D{256, 4}));
  EXPECT_EQ(t.at("blk.0.ffn_gate_tid2eid.weight").dims, (D{6, 129280}));
  EXPECT_EQ(t.at("blk.5.ffn_gate_exps.weight").dims, (D{4096, 2048, 256}));
  EXPECT_EQ(t.at("blk.5.ffn_down_exps.weight").dims, (D{2048, 4096, 256}));
  // Hash layers carry no bias, scored layers no hash table; ratio-128 layers no indexer.
  EXPECT_FALSE(t.count("blk.2.exp_probs_b.bias"));
  EXPECT_TRUE(t.count("blk.3.exp_probs_b.bias"));
  EXPECT_FALSE(t.count("blk.3.ffn_gate_tid2eid.weight"));
  EXPECT_FALSE(t.count("blk.3.indexer.proj.weight"));
  EXPECT_FALSE(t.count("blk.1.attn_compressor_kv.weight"));
  EXPECT_TRUE(t.count("blk.42.indexer.proj.weight"));
}

TEST(V4Schema, RealModelParameterCountIsAbout284B) {
  uint64_t params = 0;
  for (const TensorSpec& s : v4_main_tensors(real_config(), MtpLayout::kNone)) {
    uint64_t n = 1;
    for (uint64_t d : s.dims) n *= d;
    if (s.role != TensorRole::kHashTable) params += n;
  }
  // Model card: 284B total (spec §1 "≈284.3 B"), MTP excluded here.
  EXPECT_GT(params, 280'000'000'000ull);
  EXPECT_LT(params, 288'000'000'000ull);
}

TEST(V4Schema, Ds4MtpFileHasPrefixedBlockWithoutCompressor) {
  const auto t = by_name(v4_ds4_mtp_tensors(real_config()));
  EXPECT_TRUE(t.count("mtp.0.e_proj.weight"));
  EXPECT_TRUE(t.count("mtp.0.exp_probs_b.bias"));
  EXPECT_FALSE(t.count("mtp.0.attn_compressor_kv.weight"));
  EXPECT_FALSE(t.count("mtp.0.ffn_gate_tid2eid.weight"));
}

TEST(V4Recipes, Ds4RecipesUseDs4Dtypes) {
  for (Recipe r : {Recipe::kDs4Q2, Recipe::kDs4Q4}) {
    for (const TensorSpec& s : v4_main_tensors(real_config(), MtpLayout::kNone)) {
      const std::vector<GgmlType> ok = ds4_accepted_dtypes(s.role, false);
      EXPECT_NE(std::find(ok.begin(), ok.end(), recipe_dtype(r, s.role)), ok.end()) << s.name;
    }
  }
  EXPECT_EQ(recipe_dtype(Recipe::kDs4Q2, TensorRole::kExpertGateUp), GgmlType::IQ2_XXS);
  EXPECT_EQ(recipe_dtype(Recipe::kDs4Q2, TensorRole::kExpertDown), GgmlType::Q2_K);
  EXPECT_EQ(recipe_dtype(Recipe::kDs4Q4, TensorRole::kExpertDown), GgmlType::Q4_K);
  EXPECT_EQ(recipe_dtype(Recipe::kLlamaCppMxfp4, TensorRole::kExpertDown), GgmlType::MXFP4);
}

TEST(SyntheticPresets, TinyHasEveryLayerKind) {
  Result<V4Config> c = synthetic_preset("tiny");
  ASSERT_TRUE(c.is_ok()) << c.message();
  EXPECT_EQ(c->n_layer, 6u);
  EXPECT_EQ(c->compress_ratios, (std::vector<uint32_t>{0, 0, 4, 128, 4, 128}));
  EXPECT_EQ(c->n_hash_layers, 3u);
  EXPECT_EQ(c->n_expert, 16u);
  EXPECT_EQ(c->n_expert_used, 6u);
  EXPECT_EQ(c->n_vocab, 129280u);
}

TEST(SyntheticPresets, FlashShapeKeepsRealDimensions) {
  Result<V4Config> c = synthetic_preset("flash-shape", 2, 8);
  ASSERT_TRUE(c.is_ok()) << c.message();
  EXPECT_EQ(c->n_embd, 4096u);
  EXPECT_EQ(c->head_dim, 512u);
  EXPECT_EQ(c->n_layer, 2u);
  EXPECT_EQ(c->n_expert, 8u);
  EXPECT_EQ(c->n_hash_layers, 2u);
}

TEST(SyntheticPresets, RejectsUnknownPresetAndTooFewExperts) {
  EXPECT_EQ(synthetic_preset("huge").message(),
            "unknown preset \"huge\" (expected tiny, small or flash-shape)");
  EXPECT_EQ(synthetic_preset("tiny", 0, 4).message(),
            "invalid model config: expert_used_count 6 of 4 experts");
}

}  // namespace
}  // namespace v4
