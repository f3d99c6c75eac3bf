// DeepSeek-V4 hyperparameters (spec §1) and their GGUF metadata keys (spec §5.2).
// Everything the schema, the generator and the forward pass need is resolved from here; nothing
// downstream hard-codes 43 layers or 6 experts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace v4 {

class GgufFile;
class GgufWriter;

struct V4Config {
  uint32_t n_layer = 43;  // main stack, MTP excluded
  uint32_t n_embd = 4096;
  uint32_t n_vocab = 129280;
  uint32_t n_head = 64;
  uint32_t head_dim = 512;  // q, k and v
  uint32_t rope_dim = 64;   // the last rope_dim dims of each head
  uint32_t q_lora_rank = 1024;
  uint32_t o_lora_rank = 1024;
  uint32_t o_groups = 8;
  uint32_t n_expert = 256;
  uint32_t n_expert_used = 6;
  uint32_t n_ff_exp = 2048;
  uint32_t n_expert_shared = 1;
  uint32_t n_hash_layers = 3;
  uint32_t n_hc = 4;
  uint32_t hc_sinkhorn_iters = 20;
  float hc_eps = 1e-6f;
  float rms_eps = 1e-6f;
  std::vector<uint32_t> compress_ratios;  // n_layer entries (0, 4 or 128)
  uint32_t indexer_n_head = 64;
  uint32_t indexer_head_dim = 128;
  uint32_t indexer_top_k = 512;
  uint32_t sliding_window = 128;
  float rope_freq_base = 10000.0f;
  float compress_rope_freq_base = 160000.0f;
  float rope_scaling_factor = 16.0f;
  uint64_t rope_original_context = 65536;
  float yarn_beta_fast = 32.0f;
  float yarn_beta_slow = 1.0f;
  uint64_t context_length = 1048576;
  float expert_weights_scale = 1.5f;
  bool expert_weights_norm = true;
  float swiglu_limit = 10.0f;
  uint32_t n_mtp_layers = 0;  // nextn_predict_layers

  // Width of the compressor projections of a layer: 2·head_dim for ratio 4 (overlapping halves),
  // head_dim for ratio 128 (spec §3.4.3).
  uint32_t compressor_width(uint32_t layer) const;

  // Structural checks (dims divisible by groups, ratio values, counts). Names the bad field.
  Status validate() const;
};

// Load-time changes to the file's hyperparameters, applied before the weights are bound.
struct V4ConfigOverrides {
  // Routed experts per token in place of expert_used_count: community "4-expert" variants run
  // top-k 4 on the standard weights (spec §5.7). The routing weights renormalise over whichever
  // experts are selected (§3.5), and hash-routed layers take the first N ids of their tid2eid row.
  std::optional<uint32_t> experts_per_token;
};

// Applies the overrides; a value outside its range is an error naming it and the range.
Status apply_config_overrides(V4Config& config, const V4ConfigOverrides& overrides);

// Spec §1 compress ratios for n layers: 0,0 then alternating 4 (even) / 128 (odd).
std::vector<uint32_t> v4_default_compress_ratios(uint32_t n_layer);

// Writes general.architecture and every deepseek4.* key of spec §5.2.
void write_v4_metadata(const V4Config& config, GgufWriter& writer);

// Reads the hyperparameters back; a missing or inconsistent key is an error naming it.
Result<V4Config> read_v4_config(const GgufFile& file);

// llama.cpp's numeric id for the sqrt(softplus) gating function (spec §8 open point 2: the forks
// write 4).
constexpr uint32_t kGatingSqrtSoftplus = 4;

}  // namespace v4
