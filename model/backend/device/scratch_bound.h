// What a device backend's scratch (DeviceScratch) needs for a model's steps, known before anything
// is on the device: the fit check counts it beside the weights, the KV pages and the forward's
// workspace, and the backend reserves it before the first step, so a step never runs out of
// device memory halfway.
#pragma once

#include <cstdint>

#include "model/backend/device/device_scratch.h"
#include "model/backend/step_shapes.h"

namespace v4::device {

// The most the ops of steps of these shapes ask of one DeviceScratch: per slot, the largest
// request any op makes of it. It mirrors each op's request (the matmul's quantized activations and
// its chunk partials, the expert FFN's, the HC mixes', the attention ops' groups under
// options.attention_scratch_bytes): device_forward_test checks it against what the ops asked for,
// slot by slot. A DeviceScratch reserved to it never grows for such steps.
ScratchSizes scratch_need(const StepShapes& shapes, const DeviceOpOptions& options);

}  // namespace v4::device
