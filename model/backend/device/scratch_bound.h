// What a device backend's scratch (DeviceScratch) can grow to for a model's steps, before
// anything is on the device: the fit check counts it beside the weights, the KV pages and the
// forward's workspace, so a step never runs out of device memory halfway.
#pragma once

#include <cstdint>

#include "model/backend/device/device_scratch.h"
#include "model/backend/step_shapes.h"

namespace v4::device {

// The most the ops of steps of these shapes ask of one DeviceScratch: per slot, the largest
// request any op makes of it, summed over the slots. It mirrors each op's request (the matmul's
// quantized activations and its chunk partials, the expert FFN's, the HC mixes', the attention
// ops' groups under options.attention_scratch_bytes): device_forward_test checks it against what
// the ops asked for.
uint64_t scratch_need(const StepShapes& shapes, const DeviceOpOptions& options);

// What a DeviceScratch holds at most after such requests: a slot grows at least twofold, so up to
// twice the largest request.
inline uint64_t scratch_held(uint64_t need) { return 2 * need; }

}  // namespace v4::device
