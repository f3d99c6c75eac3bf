#include "model/synthetic/replicated_weights.h"

#include <string>

#include "core/ggml_type.h"
#include "kernels/cpu/quant.h"
#include "model/synthetic/synthetic_model.h"
#include "model/v4/v4_schema.h"

namespace v4 {
namespace {

bool hash_layer(const V4Config& c, uint32_t layer) { return layer < c.n_hash_layers; }

// The template layer of layer `l`'s kind (spec §3.4 compress ratio, §3.5 hash routing).
Result<uint32_t> template_layer(const V4Config& tmpl, const V4Config& target, uint32_t l) {
  const uint32_t ratio = target.compress_ratios[l];
  for (uint32_t j = 0; j < tmpl.n_layer; ++j) {
    if (tmpl.compress_ratios[j] == ratio && hash_layer(tmpl, j) == hash_layer(target, l)) {
      if (j == l || l >= tmpl.n_layer) return j;
    }
  }
  for (uint32_t j = 0; j < tmpl.n_layer; ++j) {
    if (tmpl.compress_ratios[j] == ratio && hash_layer(tmpl, j) == hash_layer(target, l)) return j;
  }
  return Status::error("the template has no layer like layer " + std::to_string(l) +
                       " (compress ratio " + std::to_string(ratio) + ")");
}

Status same_dimensions(const V4Config& a, const V4Config& b) {
  if (a.n_embd != b.n_embd || a.n_vocab != b.n_vocab || a.n_ff_exp != b.n_ff_exp ||
      a.n_head != b.n_head || a.head_dim != b.head_dim || a.n_expert_used != b.n_expert_used ||
      a.n_hash_layers != b.n_hash_layers) {
    return Status::error("the template's dimensions differ from the target's");
  }
  if (b.n_expert % a.n_expert != 0) {
    return Status::error(std::to_string(b.n_expert) + " experts are not a multiple of the " +
                         std::to_string(a.n_expert) + " template experts");
  }
  return Status::ok();
}

// The router of `layer` for target.n_expert experts, as gen-model generates it (§3.5).
WeightMatrix generate_router(const WeightMatrix& like, const V4Config& target, uint32_t layer,
                             uint64_t seed, std::vector<uint8_t>& storage) {
  const std::string name = "blk." + std::to_string(layer) + ".ffn_gate_inp.weight";
  const int64_t cols = like.cols(), rows = target.n_expert;
  const size_t row_bytes = *ggml_row_size(like.view.type, static_cast<uint64_t>(cols));
  storage.resize(row_bytes * static_cast<size_t>(rows));
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) {
      row[j] = synthetic_weight(name, TensorRole::kRouter, static_cast<uint64_t>(cols), seed,
                                static_cast<uint64_t>(r * cols + j));
    }
    kernels::quantize_row(like.view.type, row.data(), storage.data() + r * row_bytes, cols);
  }
  WeightMatrix m = like;
  m.view.data = storage.data();
  m.view.rows = rows;
  m.view.row_bytes = row_bytes;
  m.mat_bytes = row_bytes * static_cast<size_t>(rows);
  return m;
}

std::vector<float> generate_bias(const V4Config& target, uint32_t layer, uint64_t seed) {
  const std::string name = "blk." + std::to_string(layer) + ".exp_probs_b.bias";
  std::vector<float> bias(target.n_expert);
  for (uint32_t e = 0; e < target.n_expert; ++e) {
    bias[e] = synthetic_weight(name, TensorRole::kSmall, 1, seed, e);
  }
  return bias;
}

// Hash routing over every expert: each token's row of distinct template ids moves to one of the
// n_expert / template copies, chosen per token, so the ids stay distinct.
std::vector<int32_t> spread_hash_ids(const WeightVector<int32_t>& tmpl, uint32_t width,
                                     uint32_t template_experts, uint32_t n_expert) {
  std::vector<int32_t> ids(tmpl.data(), tmpl.data() + tmpl.size());
  const uint32_t copies = n_expert / template_experts;
  for (size_t t = 0; width && t < ids.size() / width; ++t) {
    const uint64_t h = (t + 1) * 0x9E3779B97F4A7C15ull;
    const int32_t offset = static_cast<int32_t>((h >> 33) % copies * template_experts);
    for (uint32_t i = 0; i < width; ++i) ids[t * width + i] += offset;
  }
  return ids;
}

}  // namespace

Result<ReplicatedWeights> replicate_weights(const V4Weights& tmpl, const V4Config& target,
                                            uint64_t seed) {
  if (Status s = same_dimensions(tmpl.config, target); !s) return s;
  ReplicatedWeights r;
  r.template_experts = tmpl.config.n_expert;
  r.weights = tmpl;
  r.weights.config = target;
  r.weights.mtp.reset();  // the benchmark runs the main stack
  r.weights.layers.clear();
  for (uint32_t l = 0; l < target.n_layer; ++l) {
    Result<uint32_t> src = template_layer(tmpl.config, target, l);
    if (!src) return src.status();
    LayerWeights layer = tmpl.layers[*src];
    for (WeightMatrix* m : {&layer.gate_exps, &layer.up_exps, &layer.down_exps}) {
      m->n_mats = target.n_expert;
    }
    r.owned.push_back(std::make_unique<std::vector<uint8_t>>());
    layer.router = generate_router(layer.router, target, l, seed, *r.owned.back());
    if (layer.hash_routed()) {
      layer.tid2eid = spread_hash_ids(layer.tid2eid, layer.tid2eid_width, tmpl.config.n_expert,
                                      target.n_expert);
    } else {
      layer.exp_probs_b = generate_bias(target, l, seed);
    }
    r.weights.layers.push_back(std::move(layer));
  }
  return r;
}

int64_t replicated_host_mats(const ReplicatedWeights& r, const WeightMatrix& m) {
  return m.n_mats == r.weights.config.n_expert ? r.template_experts : m.n_mats;
}

}  // namespace v4
