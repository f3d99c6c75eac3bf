#include "apps/group_device.h"

#include "model/backend/device/backend_factory.h"
#include "worker/ep/ep_expert_dispatcher.h"
#if V4_HAVE_NCCL
#include "worker/ep/nccl/nccl_expert_comm.h"
#endif

namespace v4::apps {

namespace {

// The device a group rank runs on, refused where its rows could not travel.
Result<device::DeviceSpec> group_spec(const std::string& device) {
  Result<device::DeviceSpec> spec = device::parse_device(device);
  if (!spec) return spec.status();
#if !V4_HAVE_NCCL
  if (spec->kind != DeviceKind::kCpu && !spec->emulated)
    return Status::error("--group with --device " + device +
                         ": GPU ranks exchange their rows over NCCL, and this build has none "
                         "(build with CUDA and NCCL, or use --device cpu)");
#endif
  return spec;
}

}  // namespace

Status check_group_device(const std::string& device) { return group_spec(device).status(); }

Result<GroupDeviceSetup> group_device_setup(const WorkerGroupOptions& group,
                                            const std::string& device, const V4Config& config) {
  Result<device::DeviceSpec> spec = group_spec(device);
  if (!spec) return spec.status();
  GroupDeviceSetup out;
  if (spec->kind == DeviceKind::kCpu && !spec->emulated) return out;
  Result<ExpertPlacement> placement = make_placement(group, config);
  if (!placement) return placement.status();
  out.share = held_experts(*placement, group.rank, config.n_layer);
  out.device.held_only = true;
#if V4_HAVE_NCCL
  if (!spec->emulated) {
    out.device.exchange =
        [group, index = spec->index](
            gloo::rendezvous::Store& store) -> Result<std::unique_ptr<ExpertComm>> {
      NcclRendezvous rv;
      rv.store = &store;
      rv.group = group.name;
      rv.rank = group.rank;
      rv.size = group.ranks;
      rv.device = index;
      rv.timeout = group.timeout;
      Result<std::unique_ptr<NcclExpertComm>> comm = NcclExpertComm::connect(rv);
      if (!comm) return comm.status();
      return std::unique_ptr<ExpertComm>(std::move(*comm));
    };
  }
#endif
  return out;
}

}  // namespace v4::apps
