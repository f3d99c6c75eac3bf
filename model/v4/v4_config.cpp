#include "model/v4/v4_config.h"

#include <string>

#include "model/gguf/gguf_reader.h"
#include "model/gguf/gguf_writer.h"

namespace v4 {
namespace {

const std::string kArch = "deepseek4";

std::string key(const char* name) { return kArch + "." + name; }

GgufValue u32_array(const std::vector<uint32_t>& values) {
  std::vector<GgufValue> out;
  out.reserve(values.size());
  for (uint32_t v : values) out.push_back(GgufValue::u32(v));
  return GgufValue::array(GgufValueType::U32, std::move(out));
}

GgufValue f32_array(size_t n, float value) {
  return GgufValue::array(GgufValueType::F32, std::vector<GgufValue>(n, GgufValue::f32(value)));
}

// Reads an integer key into a u32 field; missing required keys are errors.
Status read_u32(const GgufFile& file, const char* name, uint32_t& out, bool required = true) {
  const std::string k = key(name);
  if (!file.find(k)) {
    return required ? Status::error("missing metadata key " + k) : Status::ok();
  }
  Result<uint64_t> v = file.get_uint(k);
  if (!v) return v.status();
  if (*v > UINT32_MAX) return Status::error("metadata key " + k + " is out of range");
  out = static_cast<uint32_t>(*v);
  return Status::ok();
}

Status read_f32(const GgufFile& file, const char* name, float& out, bool required = true) {
  const std::string k = key(name);
  if (!file.find(k)) {
    return required ? Status::error("missing metadata key " + k) : Status::ok();
  }
  Result<double> v = file.get_float(k);
  if (!v) return v.status();
  out = static_cast<float>(*v);
  return Status::ok();
}

}  // namespace

uint32_t V4Config::compressor_width(uint32_t layer) const {
  const uint32_t ratio = compress_ratios.at(layer);
  return ratio == 4 ? 2 * head_dim : ratio == 0 ? 0 : head_dim;
}

std::vector<uint32_t> v4_default_compress_ratios(uint32_t n_layer) {
  std::vector<uint32_t> ratios(n_layer);
  for (uint32_t i = 0; i < n_layer; ++i) ratios[i] = i < 2 ? 0 : (i % 2 == 0 ? 4 : 128);
  return ratios;
}

Status V4Config::validate() const {
  auto fail = [](const std::string& what) {
    return Status::error("invalid model config: " + what);
  };
  if (n_layer == 0) return fail("block_count is 0");
  if (compress_ratios.size() != n_layer) {
    return fail("compress_ratios has " + std::to_string(compress_ratios.size()) + " entries for " +
                std::to_string(n_layer) + " layers");
  }
  for (uint32_t r : compress_ratios) {
    if (r != 0 && r != 4 && r != 128) return fail("compress ratio " + std::to_string(r));
  }
  if (n_embd == 0 || n_head == 0 || head_dim == 0 || n_vocab == 0) return fail("zero dimension");
  if (rope_dim == 0 || rope_dim > head_dim || rope_dim % 2 != 0) return fail("rope dimension");
  if (rope_dim > indexer_head_dim) return fail("rope dimension exceeds indexer head dim");
  if (o_groups == 0 || n_head % o_groups != 0) return fail("head count not divisible by groups");
  if (n_expert == 0 || n_expert_used == 0 || n_expert_used > n_expert) {
    return fail("expert_used_count " + std::to_string(n_expert_used) + " of " +
                std::to_string(n_expert) + " experts");
  }
  if (n_hash_layers > n_layer) return fail("hash_layer_count exceeds block_count");
  if (n_hc == 0) return fail("hyper_connection.count is 0");
  if (sliding_window == 0) return fail("sliding_window is 0");
  if (indexer_top_k == 0) return fail("indexer top_k is 0");
  return Status::ok();
}

Status apply_config_overrides(V4Config& config, const V4ConfigOverrides& overrides) {
  if (overrides.experts_per_token) {
    const uint32_t k = *overrides.experts_per_token;
    if (k == 0 || k > config.n_expert) {
      return Status::error("experts per token " + std::to_string(k) + " is outside 1.." +
                           std::to_string(config.n_expert) + " (the model's expert_count)");
    }
    config.n_expert_used = k;
  }
  return Status::ok();
}

void write_v4_metadata(const V4Config& c, GgufWriter& w) {
  w.set("general.architecture", GgufValue::string(kArch));
  w.set(key("block_count"), GgufValue::u32(c.n_layer + c.n_mtp_layers));
  w.set(key("context_length"), GgufValue::u32(static_cast<uint32_t>(c.context_length)));
  w.set(key("embedding_length"), GgufValue::u32(c.n_embd));
  w.set(key("vocab_size"), GgufValue::u32(c.n_vocab));
  w.set(key("attention.head_count"), GgufValue::u32(c.n_head));
  w.set(key("attention.head_count_kv"), GgufValue::u32(1));
  w.set(key("attention.key_length"), GgufValue::u32(c.head_dim));
  w.set(key("attention.value_length"), GgufValue::u32(c.head_dim));
  w.set(key("rope.dimension_count"), GgufValue::u32(c.rope_dim));
  w.set(key("attention.q_lora_rank"), GgufValue::u32(c.q_lora_rank));
  w.set(key("attention.output_lora_rank"), GgufValue::u32(c.o_lora_rank));
  w.set(key("attention.output_group_count"), GgufValue::u32(c.o_groups));
  w.set(key("attention.sliding_window"), GgufValue::u32(c.sliding_window));
  w.set(key("attention.indexer.head_count"), GgufValue::u32(c.indexer_n_head));
  w.set(key("attention.indexer.key_length"), GgufValue::u32(c.indexer_head_dim));
  w.set(key("attention.indexer.top_k"), GgufValue::u32(c.indexer_top_k));
  std::vector<uint32_t> ratios = c.compress_ratios;
  for (uint32_t i = 0; i < c.n_mtp_layers; ++i) ratios.push_back(0);  // the MTP block, §1
  w.set(key("attention.compress_ratios"), u32_array(ratios));
  w.set(key("attention.compress_rope_freq_base"), GgufValue::f32(c.compress_rope_freq_base));
  w.set(key("attention.layer_norm_rms_epsilon"), GgufValue::f32(c.rms_eps));
  w.set(key("rope.freq_base"), GgufValue::f32(c.rope_freq_base));
  w.set(key("rope.scaling.type"), GgufValue::string("yarn"));
  w.set(key("rope.scaling.factor"), GgufValue::f32(c.rope_scaling_factor));
  w.set(key("rope.scaling.original_context_length"),
        GgufValue::u32(static_cast<uint32_t>(c.rope_original_context)));
  w.set(key("rope.scaling.yarn_beta_fast"), GgufValue::f32(c.yarn_beta_fast));
  w.set(key("rope.scaling.yarn_beta_slow"), GgufValue::f32(c.yarn_beta_slow));
  w.set(key("expert_count"), GgufValue::u32(c.n_expert));
  w.set(key("expert_used_count"), GgufValue::u32(c.n_expert_used));
  w.set(key("expert_feed_forward_length"), GgufValue::u32(c.n_ff_exp));
  w.set(key("expert_shared_count"), GgufValue::u32(c.n_expert_shared));
  w.set(key("expert_group_count"), GgufValue::u32(0));
  w.set(key("expert_group_used_count"), GgufValue::u32(0));
  w.set(key("expert_weights_scale"), GgufValue::f32(c.expert_weights_scale));
  w.set(key("expert_weights_norm"), GgufValue::boolean(c.expert_weights_norm));
  w.set(key("expert_gating_func"), GgufValue::u32(kGatingSqrtSoftplus));
  w.set(key("hash_layer_count"), GgufValue::u32(c.n_hash_layers));
  const size_t n_total = c.n_layer + c.n_mtp_layers;
  w.set(key("swiglu_clamp_exp"), f32_array(n_total, c.swiglu_limit));
  w.set(key("swiglu_clamp_shexp"), f32_array(n_total, c.swiglu_limit));
  w.set(key("hyper_connection.count"), GgufValue::u32(c.n_hc));
  w.set(key("hyper_connection.sinkhorn_iterations"), GgufValue::u32(c.hc_sinkhorn_iters));
  w.set(key("hyper_connection.epsilon"), GgufValue::f32(c.hc_eps));
  if (c.n_mtp_layers > 0) w.set(key("nextn_predict_layers"), GgufValue::u32(c.n_mtp_layers));
}

Result<V4Config> read_v4_config(const GgufFile& file) {
  Result<std::string> arch = file.get_string("general.architecture");
  if (!arch) return arch.status();
  if (*arch != kArch) {
    return Status::error("general.architecture is \"" + *arch + "\", expected \"" + kArch + "\"");
  }
  V4Config c;
  uint32_t block_count = 0;
  for (Status s :
       {read_u32(file, "block_count", block_count),
        read_u32(file, "embedding_length", c.n_embd),
        read_u32(file, "attention.head_count", c.n_head),
        read_u32(file, "attention.key_length", c.head_dim),
        read_u32(file, "rope.dimension_count", c.rope_dim),
        read_u32(file, "attention.q_lora_rank", c.q_lora_rank),
        read_u32(file, "attention.output_lora_rank", c.o_lora_rank),
        read_u32(file, "attention.output_group_count", c.o_groups),
        read_u32(file, "attention.sliding_window", c.sliding_window),
        read_u32(file, "attention.indexer.head_count", c.indexer_n_head),
        read_u32(file, "attention.indexer.key_length", c.indexer_head_dim),
        read_u32(file, "attention.indexer.top_k", c.indexer_top_k),
        read_u32(file, "expert_count", c.n_expert),
        read_u32(file, "expert_used_count", c.n_expert_used),
        read_u32(file, "expert_feed_forward_length", c.n_ff_exp),
        read_u32(file, "expert_shared_count", c.n_expert_shared, false),
        read_u32(file, "hash_layer_count", c.n_hash_layers, false),
        read_u32(file, "hyper_connection.count", c.n_hc, false),
        read_u32(file, "hyper_connection.sinkhorn_iterations", c.hc_sinkhorn_iters, false),
        read_u32(file, "nextn_predict_layers", c.n_mtp_layers, false),
        read_f32(file, "hyper_connection.epsilon", c.hc_eps, false),
        read_f32(file, "attention.layer_norm_rms_epsilon", c.rms_eps, false),
        read_f32(file, "rope.freq_base", c.rope_freq_base, false),
        read_f32(file, "attention.compress_rope_freq_base", c.compress_rope_freq_base, false),
        read_f32(file, "rope.scaling.factor", c.rope_scaling_factor, false),
        read_f32(file, "rope.scaling.yarn_beta_fast", c.yarn_beta_fast, false),
        read_f32(file, "rope.scaling.yarn_beta_slow", c.yarn_beta_slow, false),
        read_f32(file, "expert_weights_scale", c.expert_weights_scale, false)}) {
    if (!s) return s;
  }
  if (file.find(key("vocab_size"))) {
    if (Status s = read_u32(file, "vocab_size", c.n_vocab); !s) return s;
  } else if (const GgufTensorInfo* embd = file.find_tensor("token_embd.weight")) {
    c.n_vocab = embd->dims.size() == 2 ? static_cast<uint32_t>(embd->dims[1]) : 0;
  }
  if (file.find(key("rope.scaling.original_context_length"))) {
    Result<uint64_t> v = file.get_uint(key("rope.scaling.original_context_length"));
    if (!v) return v.status();
    c.rope_original_context = *v;
  }
  if (file.find(key("expert_weights_norm"))) {
    Result<bool> v = file.get_bool(key("expert_weights_norm"));
    if (!v) return v.status();
    c.expert_weights_norm = *v;
  }
  // With MTP in the llama.cpp layout, block_count counts the MTP block too (spec §5.2).
  c.n_layer = block_count;
  if (c.n_mtp_layers > 0 && c.n_mtp_layers < block_count &&
      file.find_tensor("blk." + std::to_string(block_count - 1) + ".nextn.eh_proj.weight")) {
    c.n_layer = block_count - c.n_mtp_layers;
  }
  Result<std::vector<int64_t>> ratios = file.get_int_array(key("attention.compress_ratios"));
  if (!ratios) return ratios.status();
  if (ratios->size() < c.n_layer) {
    return Status::error("metadata key " + key("attention.compress_ratios") + " has " +
                         std::to_string(ratios->size()) + " entries, need " +
                         std::to_string(c.n_layer));
  }
  c.compress_ratios.clear();
  for (uint32_t i = 0; i < c.n_layer; ++i) {
    c.compress_ratios.push_back(static_cast<uint32_t>((*ratios)[i]));
  }
  if (Status s = c.validate(); !s) return s;
  return c;
}

}  // namespace v4
