// The matmul ops on the host executor (EmulatedDeviceBackend).
#include "kernels/device/host_exec.h"
#include "model/backend/device/device_ops_experts.h"
#include "model/backend/device/device_ops_matmul.h"
#include "model/backend/device/device_ops_q8_0_split.h"

namespace v4::device {
using kernels::HostExec;
V4_DEVICE_OPS_MATMUL(HostExec)
}  // namespace v4::device
