// Where a worker group rank's experts live and travel, from --device (docs/design.md, "Expert
// parallelism"). CPU ranks: every expert in the mapped file, rows over Gloo in host memory.
// Device ranks: only the rank's own experts go to device memory, and the rows travel between
// device buffers — over NCCL on a GPU, over Gloo on the emulated device (its memory is the
// host's).
#pragma once

#include <string>

#include "core/status.h"
#include "model/v4/expert_tiers.h"
#include "model/v4/v4_config.h"
#include "worker/ep/worker_group.h"

namespace v4::apps {

struct GroupDeviceSetup {
  GroupDevice device;
  ExpertTiers share;  // with device.held_only: the experts this rank uploads
};

// What flags alone can tell, before the model loads: a GPU rank needs a build with NCCL.
Status check_group_device(const std::string& device);
// The rank's share and communicator choice, once the model's shape is known.
Result<GroupDeviceSetup> group_device_setup(const WorkerGroupOptions& group,
                                            const std::string& device, const V4Config& config);

}  // namespace v4::apps
