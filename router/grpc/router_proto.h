// Conversions between the router's EngineClient types and proto/worker.proto's messages.
#pragma once

#include <cstdint>

#include "proto/worker.pb.h"
#include "router/openai/engine_client.h"

namespace v4::router_grpc {

namespace pb = ::v4serve::worker::v1;
using router::EngineEvent;
using router::EngineFinish;
using router::EngineHistogram;
using router::EnginePromptLogprob;
using router::EngineRequest;
using router::EngineSampling;
using router::EngineSnapshot;

// `resumed`: the last `resumed` tokens of `prompt` are output already sent (a continuation).
void to_proto(const EngineRequest& request, uint64_t id, uint32_t resumed, pb::SubmitRequest& out);
EngineFinish from_proto(pb::Finish finish);
EngineEvent from_proto(const pb::Event& event);
EngineHistogram from_proto(const pb::Histogram& histogram);
// Adds one worker's statistics into `total` (histograms of equal bounds add bucket by bucket).
void add_stats(const pb::StatsResponse& stats, EngineSnapshot& total);

}  // namespace v4::router_grpc
