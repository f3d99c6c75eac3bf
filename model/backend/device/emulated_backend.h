// The device ops run on the host (kernels/device/host_exec.h): every kernel's per-index code,
// one index at a time. Slow, and not a serving backend: it exists so that the CUDA backend's
// logic is checked against CpuBackend on machines without a GPU (tests/unit/model/backend).
#pragma once

#include "kernels/device/host_exec.h"
#include "model/backend/device/device_backend.h"

namespace v4::device {

using EmulatedDeviceBackend = DeviceBackend<kernels::HostExec>;

}  // namespace v4::device
