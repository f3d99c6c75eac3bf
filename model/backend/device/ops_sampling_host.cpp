// The sampling op on the host executor (EmulatedDeviceBackend).
#include "kernels/device/host_exec.h"
#include "model/backend/device/device_ops_sampling.h"

namespace v4::device {
using kernels::HostExec;
V4_DEVICE_OPS_SAMPLING(HostExec)
}  // namespace v4::device
