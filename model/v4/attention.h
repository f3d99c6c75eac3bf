// The attention sub-layer of every V4 block (spec §3.4): low-rank query with per-head weightless
// RMS norm, a single shared KV row (K = V) with FP8 round-trip, the layer's compressors and
// lightning indexer, sliding-window + compressed-row attention with a per-head sink logit, inverse
// RoPE on the output and the grouped low-rank output projection.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/backend/tensor.h"
#include "model/v4/v4_forward_batch.h"

namespace v4 {

struct LayerWeights;

// RoPE frequencies of one layer kind (plain for ratio 0, YaRN for compressed layers).
struct AttentionRope {
  std::vector<float> freqs;
  std::unique_ptr<DeviceBuffer> copy;  // the frequencies in the backend's memory
  // What backend ops read: the backend's copy once made, else the host values.
  const float* device() const {
    return copy ? static_cast<const float*>(copy->data()) : freqs.data();
  }
};

// h: [n][n_embd] attention-normed inputs of the batch; out: [n][n_embd]. `layer` indexes the
// state store's layer slots. Streams the batch's KV rows and compressor steps into the states.
void attention_forward(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer,
                       const AttentionRope& rope, const float* h, float* out);

}  // namespace v4
