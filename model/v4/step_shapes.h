// The forward's steps as StepShapes (model/backend/step_shapes.h): what sizes a device backend's
// scratch for a model's largest step, known before the weights go to the device.
#pragma once

#include <cstdint>

#include "model/backend/kv_row_codec.h"
#include "model/backend/step_shapes.h"
#include "model/v4/v4_weights.h"

namespace v4 {

// Steps of up to `tokens` tokens at positions below `context`, over a KV cache of `storage`.
// Each MoE layer's routed experts take up to `routed_rows_per_token` rows a token:
// n_expert_used, or on a worker group's rank its peers' rows too (ranks · n_expert_used).
StepShapes step_shapes(const V4Weights& weights, int64_t tokens, int64_t context,
                       int64_t routed_rows_per_token, KvStorage storage);

// What a device backend's two scratches are sized for (Backend::reserve_scratch) and the fit check
// counts: every step of up to `tokens` tokens, and the recorded decode steps of up to
// `decode_rows` sequences, padded as they are recorded (decode_bucket) and never past `tokens`.
struct ScratchShapes {
  StepShapes steps, recorded_steps;
};
ScratchShapes scratch_shapes(const V4Weights& weights, int64_t tokens, int64_t decode_rows,
                             int64_t context, int64_t routed_rows_per_token, KvStorage storage);

}  // namespace v4
