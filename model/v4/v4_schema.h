// The tensor list of a DeepSeek-V4 GGUF for a given config (spec §5.4, MTP §5.5): names, dims in
// GGUF order (ne0 first) and the role that decides which dtypes a file may use for it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/v4/v4_config.h"

namespace v4 {

enum class TensorRole {
  kEmbedding,       // token_embd
  kOutput,          // output (the head)
  kHcFn,            // hc_*_fn, output_hc_fn, mtp hc_head_fn
  kSmall,           // norms, hc scale/base, sinks, exp_probs_b: F32 in every known file
  kAttnProjection,  // attn_q_a, attn_q_b, attn_kv, attn_output_a, attn_output_b (FP8 in HF)
  kCompressorApe,
  kCompressorProjection,  // attn/indexer compressor kv and gate (BF16 in HF)
  kIndexerQuery,          // indexer.attn_q_b (FP8 in HF)
  kIndexerProjection,     // indexer.proj (BF16 in HF)
  kRouter,                // ffn_gate_inp
  kHashTable,             // ffn_gate_tid2eid (integers)
  kExpertGateUp,          // ffn_gate_exps, ffn_up_exps
  kExpertDown,            // ffn_down_exps
  kSharedExpert,          // ffn_*_shexp (FP8 in HF)
  kMtpProjection,         // mtp e_proj / h_proj, nextn.eh_proj (FP8 in HF)
};

const char* tensor_role_name(TensorRole role);

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> dims;
  TensorRole role;
};

// Where the MTP block lives (spec §5.5): ds4 ships it as a separate file with "mtp.0." names,
// the llama.cpp family as layer blk.<n_layer> of the main file plus nextn.* tensors.
enum class MtpLayout { kNone, kDs4, kLlamaCpp };

// Tensors of the main file. With MtpLayout::kLlamaCpp the MTP block is included.
std::vector<TensorSpec> v4_main_tensors(const V4Config& config, MtpLayout mtp);

// Tensors of ds4's separate MTP file.
std::vector<TensorSpec> v4_ds4_mtp_tensors(const V4Config& config);

}  // namespace v4
