// The full-scale benchmark's scaled weights (model/synthetic/replicated_weights.h) against what
// gen-model writes: scaled to the template's own counts they are the template byte for byte
// (so the generated routers are gen-model's), and scaled up, the device copy of every layer and
// expert is the template layer of its kind and template expert e mod the template's count, and
// the forward runs on them.
#include "model/synthetic/replicated_weights.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "model/backend/device/emulated_backend.h"
#include "model/synthetic/synthetic_model.h"
#include "model/v4/device_weights.h"
#include "model/v4/v4_forward.h"
#include "model/v4/v4_forward_model.h"
#include "tests/unit/common/test_models.h"

namespace v4 {
namespace {

constexpr uint64_t kSeed = 1234;  // write_synthetic_model's default

using test_support::tokenizer_json;

// tiny with 8 experts and a 4096-token vocabulary, ds4-q2 (F16 router, IQ2_XXS/Q2_K experts).
class ReplicatedWeights_ : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::filesystem::path dir = test_support::test_models_dir();
    std::filesystem::create_directories(dir);
    path_ = (dir / ("replicate-template-" + std::to_string(::getpid()) + ".gguf")).string();
    SyntheticModelOptions o;
    o.config = *synthetic_preset("tiny", 0, 8);
    o.config.n_vocab = 4096;
    o.recipe = Recipe::kDs4Q2;
    o.tokenizer_json = tokenizer_json();
    o.out_path = path_;
    o.seed = kSeed;
    ASSERT_TRUE(write_synthetic_model(o));
    Result<std::unique_ptr<V4Model>> m = load_v4_model(path_);
    ASSERT_TRUE(m) << m.message();
    model_ = std::move(*m).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    std::filesystem::remove(path_);
  }
  static V4Config target(uint32_t layers, uint32_t experts) {
    V4Config c = *synthetic_preset("tiny", layers, experts);
    c.n_vocab = 4096;
    return c;
  }

  static inline std::string path_;
  static inline V4Model* model_ = nullptr;
};

bool same_bytes(const WeightMatrix& a, const WeightMatrix& b) {
  return a.mat_bytes == b.mat_bytes && a.n_mats == b.n_mats &&
         std::memcmp(a.view.data, b.view.data, a.mat_bytes * a.n_mats) == 0;
}

TEST_F(ReplicatedWeights_, AtTheTemplatesOwnCountsAreTheTemplate) {
  const V4Weights& t = model_->weights;
  Result<ReplicatedWeights> r = replicate_weights(t, t.config, kSeed);
  ASSERT_TRUE(r) << r.message();
  ASSERT_EQ(r->weights.layers.size(), t.layers.size());
  for (size_t l = 0; l < t.layers.size(); ++l) {
    const LayerWeights &a = r->weights.layers[l], &b = t.layers[l];
    EXPECT_TRUE(same_bytes(a.router, b.router)) << "router of layer " << l;
    EXPECT_EQ(std::vector<float>(a.exp_probs_b.data(), a.exp_probs_b.data() + a.exp_probs_b.size()),
              std::vector<float>(b.exp_probs_b.data(), b.exp_probs_b.data() + b.exp_probs_b.size()))
        << "router bias of layer " << l;
    EXPECT_TRUE(std::equal(a.tid2eid.data(), a.tid2eid.data() + a.tid2eid.size(), b.tid2eid.data(),
                           b.tid2eid.data() + b.tid2eid.size()));
    EXPECT_EQ(a.q_b.view.data, b.q_b.view.data);
    EXPECT_EQ(a.gate_exps.view.data, b.gate_exps.view.data);
  }
}

TEST_F(ReplicatedWeights_, ScaledUpCopiesLayersByKindAndExpertsCyclically) {
  const V4Weights& t = model_->weights;
  const V4Config big = target(9, 32);
  Result<ReplicatedWeights> r = replicate_weights(t, big, kSeed);
  ASSERT_TRUE(r) << r.message();
  ASSERT_EQ(r->weights.layers.size(), 9u);
  for (uint32_t l = 0; l < 9; ++l) {
    const LayerWeights& w = r->weights.layers[l];
    EXPECT_EQ(w.compress_ratio, big.compress_ratios[l]);
    EXPECT_EQ(w.hash_routed(), l < big.n_hash_layers);
    EXPECT_EQ(w.router.rows(), 32);
    EXPECT_EQ(w.gate_exps.n_mats, 32);
    if (w.hash_routed()) {
      int32_t top = 0;
      for (size_t i = 0; i < w.tid2eid.size(); ++i) top = std::max(top, w.tid2eid[i]);
      EXPECT_GE(top, 8) << "hash ids reach past the template's experts";
      EXPECT_LT(top, 32);
    } else {
      EXPECT_EQ(w.exp_probs_b.size(), 32u);
    }
  }
  device::EmulatedDeviceBackend be(kernels::HostExec{});
  Result<std::unique_ptr<DeviceWeights>> dev = DeviceWeights::upload(
      r->weights, be, {}, [&](const WeightMatrix& m) { return replicated_host_mats(*r, m); });
  ASSERT_TRUE(dev) << dev.message();
  for (uint32_t l : {0u, 4u, 8u}) {
    const WeightMatrix& d = (*dev)->weights().layers[l].down_exps;
    const WeightMatrix& src = r->weights.layers[l].down_exps;
    for (int64_t e = 0; e < 32; ++e) {
      EXPECT_EQ(std::memcmp(d.matrix(e).data, src.matrix(e % 8).data, d.mat_bytes), 0)
          << "layer " << l << " expert " << e;
    }
  }
  V4Forward forward((*dev)->weights(), be);
  ContiguousKvState state(big, be);
  const std::vector<int32_t> ids = {3, 1000, 77, 2048, 5};
  SequenceInput in{&state, ids, true};
  Result<ForwardOutput> out = forward.forward({&in, 1});
  ASSERT_TRUE(out) << out.message();
  for (float v : out->logits) ASSERT_TRUE(std::isfinite(v));
}

TEST_F(ReplicatedWeights_, RefusesTargetsTheTemplateCannotMake) {
  const V4Weights& t = model_->weights;
  EXPECT_FALSE(replicate_weights(t, target(9, 20), kSeed)) << "20 is not a multiple of 8";
  V4Config wide = target(9, 32);
  wide.n_embd *= 2;
  EXPECT_FALSE(replicate_weights(t, wide, kSeed));
}

}  // namespace
}  // namespace v4
