#include "model/v4/v4_schema.h"

namespace v4 {
namespace {

using Dims = std::vector<uint64_t>;

struct SpecList {
  std::vector<TensorSpec>& out;
  std::string prefix;
  void add(const std::string& name, Dims dims, TensorRole role) {
    out.push_back({prefix + name, std::move(dims), role});
  }
};

// Hyper-connection mixing rows: n pre weights, n post gates and n×n combine logits (§3.2).
uint64_t hc_mix_count(const V4Config& c) { return 2ull * c.n_hc + uint64_t{c.n_hc} * c.n_hc; }

void add_hc(SpecList& l, const V4Config& c, const std::string& which) {
  l.add("hc_" + which + "_fn.weight", {uint64_t{c.n_hc} * c.n_embd, hc_mix_count(c)},
        TensorRole::kHcFn);
  l.add("hc_" + which + "_scale.weight", {3}, TensorRole::kSmall);
  l.add("hc_" + which + "_base.weight", {hc_mix_count(c)}, TensorRole::kSmall);
}

void add_attention(SpecList& l, const V4Config& c, uint32_t ratio) {
  const uint64_t q_dim = uint64_t{c.n_head} * c.head_dim;
  l.add("attn_norm.weight", {c.n_embd}, TensorRole::kSmall);
  l.add("attn_q_a.weight", {c.n_embd, c.q_lora_rank}, TensorRole::kAttnProjection);
  l.add("attn_q_a_norm.weight", {c.q_lora_rank}, TensorRole::kSmall);
  l.add("attn_q_b.weight", {c.q_lora_rank, q_dim}, TensorRole::kAttnProjection);
  l.add("attn_kv.weight", {c.n_embd, c.head_dim}, TensorRole::kAttnProjection);
  l.add("attn_kv_a_norm.weight", {c.head_dim}, TensorRole::kSmall);
  l.add("attn_sinks.weight", {c.n_head}, TensorRole::kSmall);
  // Grouped low-rank output (§3.4): each group maps its heads' concatenation to o_lora_rank.
  l.add("attn_output_a.weight", {q_dim / c.o_groups, uint64_t{c.o_groups} * c.o_lora_rank},
        TensorRole::kAttnProjection);
  l.add("attn_output_b.weight", {uint64_t{c.o_groups} * c.o_lora_rank, c.n_embd},
        TensorRole::kAttnProjection);
  if (ratio == 0) return;
  const uint64_t width = ratio == 4 ? 2ull * c.head_dim : c.head_dim;
  l.add("attn_compressor_ape.weight", {width, ratio}, TensorRole::kCompressorApe);
  l.add("attn_compressor_kv.weight", {c.n_embd, width}, TensorRole::kCompressorProjection);
  l.add("attn_compressor_gate.weight", {c.n_embd, width}, TensorRole::kCompressorProjection);
  l.add("attn_compressor_norm.weight", {c.head_dim}, TensorRole::kSmall);
  if (ratio != 4) return;
  // Lightning indexer (§3.4.4): its own ratio-4 compressor of width 2·indexer_head_dim.
  const uint64_t iw = 2ull * c.indexer_head_dim;
  l.add("indexer.attn_q_b.weight", {c.q_lora_rank, uint64_t{c.indexer_n_head} * c.indexer_head_dim},
        TensorRole::kIndexerQuery);
  l.add("indexer.proj.weight", {c.n_embd, c.indexer_n_head}, TensorRole::kIndexerProjection);
  l.add("indexer_compressor_ape.weight", {iw, 4}, TensorRole::kCompressorApe);
  l.add("indexer_compressor_kv.weight", {c.n_embd, iw}, TensorRole::kCompressorProjection);
  l.add("indexer_compressor_gate.weight", {c.n_embd, iw}, TensorRole::kCompressorProjection);
  l.add("indexer_compressor_norm.weight", {c.indexer_head_dim}, TensorRole::kSmall);
}

void add_moe(SpecList& l, const V4Config& c, bool hash_routed) {
  l.add("ffn_norm.weight", {c.n_embd}, TensorRole::kSmall);
  l.add("ffn_gate_inp.weight", {c.n_embd, c.n_expert}, TensorRole::kRouter);
  if (hash_routed) {
    l.add("ffn_gate_tid2eid.weight", {c.n_expert_used, c.n_vocab}, TensorRole::kHashTable);
  } else {
    l.add("exp_probs_b.bias", {c.n_expert}, TensorRole::kSmall);
  }
  l.add("ffn_gate_exps.weight", {c.n_embd, c.n_ff_exp, c.n_expert}, TensorRole::kExpertGateUp);
  l.add("ffn_up_exps.weight", {c.n_embd, c.n_ff_exp, c.n_expert}, TensorRole::kExpertGateUp);
  l.add("ffn_down_exps.weight", {c.n_ff_exp, c.n_embd, c.n_expert}, TensorRole::kExpertDown);
  const uint64_t shared_ff = uint64_t{c.n_ff_exp} * c.n_expert_shared;
  l.add("ffn_gate_shexp.weight", {c.n_embd, shared_ff}, TensorRole::kSharedExpert);
  l.add("ffn_up_shexp.weight", {c.n_embd, shared_ff}, TensorRole::kSharedExpert);
  l.add("ffn_down_shexp.weight", {shared_ff, c.n_embd}, TensorRole::kSharedExpert);
}

// One transformer block: HC around attention and MoE (§2).
void add_block(SpecList& l, const V4Config& c, uint32_t ratio, bool hash_routed) {
  add_hc(l, c, "attn");
  add_attention(l, c, ratio);
  add_hc(l, c, "ffn");
  add_moe(l, c, hash_routed);
}

void add_hc_head(SpecList& l, const V4Config& c, const std::string& stem) {
  l.add(stem + "_base.weight", {c.n_hc}, TensorRole::kSmall);
  l.add(stem + "_fn.weight", {uint64_t{c.n_hc} * c.n_embd, c.n_hc}, TensorRole::kHcFn);
  l.add(stem + "_scale.weight", {1}, TensorRole::kSmall);
}

}  // namespace

const char* tensor_role_name(TensorRole role) {
  switch (role) {
    case TensorRole::kEmbedding:
      return "embedding";
    case TensorRole::kOutput:
      return "output head";
    case TensorRole::kHcFn:
      return "hyper-connection projection";
    case TensorRole::kSmall:
      return "norm/scale/bias vector";
    case TensorRole::kAttnProjection:
      return "attention projection";
    case TensorRole::kCompressorApe:
      return "compressor positional bias";
    case TensorRole::kCompressorProjection:
      return "compressor projection";
    case TensorRole::kIndexerQuery:
      return "indexer query projection";
    case TensorRole::kIndexerProjection:
      return "indexer head weights";
    case TensorRole::kRouter:
      return "router";
    case TensorRole::kHashTable:
      return "hash routing table";
    case TensorRole::kExpertGateUp:
      return "routed expert gate/up";
    case TensorRole::kExpertDown:
      return "routed expert down";
    case TensorRole::kSharedExpert:
      return "shared expert";
    case TensorRole::kMtpProjection:
      return "MTP projection";
  }
  return "?";
}

std::vector<TensorSpec> v4_main_tensors(const V4Config& c, MtpLayout mtp) {
  std::vector<TensorSpec> out;
  SpecList global{out, ""};
  global.add("token_embd.weight", {c.n_embd, c.n_vocab}, TensorRole::kEmbedding);
  add_hc_head(global, c, "output_hc");
  global.add("output_norm.weight", {c.n_embd}, TensorRole::kSmall);
  global.add("output.weight", {c.n_embd, c.n_vocab}, TensorRole::kOutput);
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    SpecList layer{out, "blk." + std::to_string(il) + "."};
    add_block(layer, c, c.compress_ratios[il], il < c.n_hash_layers);
  }
  if (mtp == MtpLayout::kLlamaCpp) {
    // The MTP block is layer n_layer: raw-window attention, scored routing (§3.7, §5.5). Where
    // its HC head lives in llama.cpp files is unverified (spec §8.1); we name it nextn.hc_head.
    SpecList block{out, "blk." + std::to_string(c.n_layer) + "."};
    add_block(block, c, 0, false);
    block.add("nextn.eh_proj.weight", {2ull * c.n_embd, c.n_embd}, TensorRole::kMtpProjection);
    block.add("nextn.enorm.weight", {c.n_embd}, TensorRole::kSmall);
    block.add("nextn.hnorm.weight", {c.n_embd}, TensorRole::kSmall);
    block.add("nextn.shared_head_norm.weight", {c.n_embd}, TensorRole::kSmall);
    add_hc_head(block, c, "nextn.hc_head");
  }
  return out;
}

std::vector<TensorSpec> v4_ds4_mtp_tensors(const V4Config& c) {
  std::vector<TensorSpec> out;
  SpecList l{out, "mtp.0."};
  add_hc_head(l, c, "hc_head");
  l.add("e_proj.weight", {c.n_embd, c.n_embd}, TensorRole::kMtpProjection);
  l.add("h_proj.weight", {c.n_embd, c.n_embd}, TensorRole::kMtpProjection);
  l.add("enorm.weight", {c.n_embd}, TensorRole::kSmall);
  l.add("hnorm.weight", {c.n_embd}, TensorRole::kSmall);
  l.add("norm.weight", {c.n_embd}, TensorRole::kSmall);
  add_block(l, c, 0, false);
  return out;
}

}  // namespace v4
