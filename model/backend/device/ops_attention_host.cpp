// The attention ops on the host executor (EmulatedDeviceBackend).
#include "kernels/device/host_exec.h"
#include "model/backend/device/device_ops_sparse_attention.h"

namespace v4::device {
using kernels::HostExec;
V4_DEVICE_OPS_ATTENTION(HostExec)
}  // namespace v4::device
