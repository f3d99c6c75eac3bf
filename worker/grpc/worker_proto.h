// Conversions between the worker's types and proto/worker.proto's messages: a submitted
// request into a GenerationRequest, engine events and statistics into their messages.
// Validation of what the router sent happens here and in EngineCore::validate (gRPC receive is
// a boundary, style.md).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "proto/worker.pb.h"
#include "worker/engine.h"

namespace v4::worker_grpc {

namespace pb = ::v4serve::worker::v1;

Result<GenerationRequest> from_proto(const pb::SubmitRequest& request);
pb::Finish to_proto(FinishReason reason);
// `router_id`: the id the router gave the request; `token_index`: the event's output position.
void to_proto(const GenerationEvent& event, uint64_t router_id, uint32_t token_index,
              pb::Event& out);
// Prefix-cache counters in tokens are the service's own (see WorkerService); the scheduler's
// page counts are not copied.
void to_proto(const EngineStats& stats, uint32_t page_tokens, pb::StatsResponse& out);

}  // namespace v4::worker_grpc
