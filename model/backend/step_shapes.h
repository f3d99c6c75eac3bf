// The shapes of a step's ops that size what a backend's ops keep between calls (a device
// backend's scratch): each matrix product's weight and most input rows, each grouped expert
// FFN's, the hyper-connection mixes, the attention of the step's widest token, and the selection
// of the best tokens of its logit rows. The model
// fills it for its largest step (v4::step_shapes); a device backend bounds its scratch from it
// (device::scratch_need) before anything is on the device.
#pragma once

#include <cstdint>
#include <vector>

#include "core/ggml_type.h"

namespace v4 {

struct StepShapes {
  // y = W·x for up to `inputs` rows of x: W is rows × cols of `type`.
  struct Product {
    GgmlType type = GgmlType::F32;
    int64_t rows = 0, cols = 0, inputs = 0;
  };
  // Backend::grouped_expert_ffn over up to `rows` rows and `n_expert` experts.
  struct ExpertFfn {
    GgmlType gate = GgmlType::F32, up = GgmlType::F32, down = GgmlType::F32;
    int64_t d = 0, ff = 0, rows = 0;
    uint32_t n_expert = 0;
  };
  // A hyper-connection mix: RMSNorm of `flat` values then fn (flat → rows) for up to `tokens`.
  struct HcMix {
    int64_t flat = 0, rows = 0, tokens = 0;
  };
  // A layer kind's attention for up to `tokens` tokens at positions below `context`: `compressed`
  // rows at most per token (the indexer's top-k, or every finished row of a ratio-128 layer),
  // `index_keys` indexer scores per token (0: no indexer), rows of `head_dim` values, `kv_values`
  // values appended per token (the main and the indexer's compressor inputs); `decoded`: the
  // compressed rows are stored encoded (FP8 or QAT pages), and a token's are decoded to floats.
  struct Attention {
    int64_t tokens = 0, window = 0, compressed = 0, index_keys = 0;
    int64_t head_dim = 0, n_head = 0, kv_values = 0;
    bool decoded = true;
  };
  // Backend::top_logits over up to `rows` rows of `vocab` logits, k ≤ `k`.
  struct Selection {
    int64_t rows = 0, vocab = 0, k = 0;
  };
  std::vector<Product> products;
  std::vector<ExpertFfn> expert_ffns;
  std::vector<HcMix> hc_mixes;
  std::vector<Attention> attention;
  std::vector<Selection> selections;
};

}  // namespace v4
