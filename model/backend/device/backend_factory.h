// The backend a command runs on, chosen by `--device cpu|cuda[:N]`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "model/backend/backend.h"
#include "model/backend/device/device_scratch.h"

namespace v4::device {

struct DeviceSpec {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;
  // The device kernels run on the host (EmulatedDeviceBackend): the GPU path's logic, weights
  // copied as to a device, on any machine. For checking, not for speed.
  bool emulated = false;
  // "emulated:G": the fit check sees a device of G GiB, all of it free, so that the memory plan
  // (what fits, the KV budget it leaves) can be checked without a GPU. 0: the host's memory, no
  // bound. The host's allocations are not limited by it.
  uint64_t emulated_bytes = 0;
  // Device backends: how the ops choose kernels and bound scratch (no choice changes a bit).
  DeviceOpOptions ops = {};

  // The forward's memory is a device's, of a known size (a GPU, or "emulated:G"), not the host's.
  bool bounds_memory() const { return kind == DeviceKind::kCuda || emulated_bytes > 0; }
};

// "cpu", "cuda", "cuda:N", "emulated" or "emulated:G" (G GiB); an error naming the accepted forms
// otherwise.
Result<DeviceSpec> parse_device(const std::string& text);

// True when this build has the CUDA backend (nvcc was found when it was configured).
bool cuda_built();

// Free and total memory of a CUDA device; an error on a CPU-only build or without a GPU.
struct DeviceMemory {
  uint64_t free_bytes = 0;
  uint64_t total_bytes = 0;
  std::string name;
};
Result<DeviceMemory> device_memory(const DeviceSpec& spec);

// A CpuBackend with `threads` threads, or a CUDA backend on the given device; a clear error when
// the device cannot be used (no GPU, no driver, a CPU-only build).
Result<std::unique_ptr<Backend>> make_backend(const DeviceSpec& spec, unsigned threads);

}  // namespace v4::device
