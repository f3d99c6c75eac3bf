// Binds every tensor a DeepSeek-V4 forward pass reads (spec §5.4, MTP §5.5) to typed views into a
// mapped GgufFile. Matrices stay in the file's format (any type the CPU dot products support);
// small vectors (norms, HC scale/base, sinks, biases, compressor ape) are widened to float once;
// the hash table is copied as int32 after a range check. The GgufFile(s) must outlive the weights.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/cpu/matmul.h"
#include "model/v4/v4_config.h"
#include "model/v4/weight_vector.h"

namespace v4 {

class GgufFile;

// A 2-D weight, or a stack of `n_mats` equal matrices (routed experts, ne2 = expert).
struct WeightMatrix {
  kernels::MatrixView view;  // matrix 0
  int64_t n_mats = 1;
  size_t mat_bytes = 0;

  bool present() const { return view.data != nullptr; }
  int64_t rows() const { return view.rows; }
  int64_t cols() const { return view.cols; }
  kernels::MatrixView matrix(int64_t index) const;
  // Rows [first, first + count) of matrix 0.
  kernels::MatrixView row_range(int64_t first, int64_t count) const;
};

struct HcWeights {
  WeightMatrix fn;            // [n_hc·n_embd → 2n+n²]
  WeightVector<float> scale;  // 3
  WeightVector<float> base;   // 2n+n²
};

struct HcHeadWeights {
  WeightMatrix fn;            // [n_hc·n_embd → n_hc]
  WeightVector<float> scale;  // 1
  WeightVector<float> base;   // n_hc
};

struct CompressorWeights {
  uint32_t ratio = 0;  // 4 or 128; 0 when the layer has none
  uint32_t width = 0;  // projection width: 2·head for ratio 4, head for ratio 128
  WeightMatrix kv, gate;
  WeightVector<float> ape;   // [ratio][width]: row t mod ratio is the score bias
  WeightVector<float> norm;  // head width
};

struct IndexerWeights {
  WeightMatrix q_b;   // [q_lora_rank → indexer heads · indexer head dim]
  WeightMatrix proj;  // [n_embd → indexer heads]
  CompressorWeights compressor;
};

struct LayerWeights {
  uint32_t compress_ratio = 0;
  HcWeights hc_attn, hc_ffn;
  WeightVector<float> attn_norm, q_a_norm, kv_a_norm, sinks;
  WeightMatrix q_a, q_b, kv, output_a, output_b;
  CompressorWeights compressor;  // ratio != 0
  IndexerWeights indexer;        // ratio == 4
  WeightVector<float> ffn_norm;
  WeightMatrix router;
  WeightVector<float> exp_probs_b;  // empty on hash-routed layers
  WeightVector<int32_t> tid2eid;    // [vocab][tid2eid_width] on hash-routed layers
  uint32_t tid2eid_width = 0;
  WeightMatrix gate_exps, up_exps, down_exps;
  WeightMatrix gate_shexp, up_shexp, down_shexp;
  bool hash_routed() const { return !tid2eid.empty(); }
};

// The next-token-prediction block (spec §3.7): ds4's e_proj/h_proj pair or llama.cpp's
// concatenated eh_proj ([e | h] along the input).
struct MtpWeights {
  LayerWeights block;
  WeightMatrix e_proj, h_proj, eh_proj;
  WeightVector<float> enorm, hnorm, norm;
  HcHeadWeights hc_head;
};

struct V4Weights {
  V4Config config;
  WeightMatrix token_embd, output;
  HcHeadWeights output_hc;
  WeightVector<float> output_norm;
  std::vector<LayerWeights> layers;
  std::optional<MtpWeights> mtp;
};

// Binds the main model from `file`. The MTP block is bound from `mtp_file` (ds4 layout, names
// "mtp.0.*") when given, else from blk.<n_layer>.* + nextn.* in `file` when present.
Result<V4Weights> bind_v4_weights(const GgufFile& file, const V4Config& config,
                                  const GgufFile* mtp_file = nullptr);

// The model's first `n` layers (1 ≤ n ≤ config.n_layer) and everything outside the layers: the
// same matrices, a config that counts n layers. Layer kinds follow the layer index (spec §3.4),
// so the cut model is the one a file of n layers would make; a measurement on a device too
// small for every layer runs it.
V4Weights first_layers(const V4Weights& weights, uint32_t n);

}  // namespace v4
