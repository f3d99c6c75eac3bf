#include "model/backend/device/backend_factory.h"

#include <charconv>
#include <cstdlib>
#include <cstring>

#include "model/backend/cpu_backend.h"
#include "model/backend/device/emulated_backend.h"
#include "model/backend/profiled_backend.h"
#if V4_HAVE_CUDA
#include "model/backend/device/cuda_backend.h"
#endif

namespace v4::device {

Result<DeviceSpec> parse_device(const std::string& text) {
  if (text == "cpu") return DeviceSpec{DeviceKind::kCpu, 0};
  if (text == "emulated") return DeviceSpec{DeviceKind::kCpu, 0, true};
  if (text.rfind("emulated:", 0) == 0 && text.size() > 9) {
    double gib = 0;
    const char* first = text.data() + 9;
    const char* last = text.data() + text.size();
    auto [end, ec] = std::from_chars(first, last, gib);
    if (ec == std::errc() && end == last && gib > 0 && gib <= 1 << 20) {
      return DeviceSpec{DeviceKind::kCpu, 0, true, static_cast<uint64_t>(gib * (1 << 30))};
    }
  }
  if (text == "cuda") return DeviceSpec{DeviceKind::kCuda, 0};
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5) {
    int index = -1;
    const char* first = text.data() + 5;
    const char* last = text.data() + text.size();
    auto [end, ec] = std::from_chars(first, last, index);
    if (ec == std::errc() && end == last && index >= 0 && index < 1024) {
      return DeviceSpec{DeviceKind::kCuda, index};
    }
  }
  return Status::error(
      "--device wants cpu, cuda or cuda:N (N a device index), or emulated[:G] (a device of G GiB), "
      "not '" +
      text + "'");
}

bool cuda_built() {
#if V4_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

Result<DeviceMemory> device_memory(const DeviceSpec& spec) {
  if (spec.kind == DeviceKind::kCpu) return Status::error("the CPU has no device memory");
#if V4_HAVE_CUDA
  Result<CudaDeviceInfo> info = cuda_device_info(spec.index);
  if (!info) return info.status();
  return DeviceMemory{info->free_bytes, info->total_bytes, info->name};
#else
  return Status::error(
      "this build has no CUDA backend (nvcc was not found when it was configured)");
#endif
}

Result<std::unique_ptr<Backend>> make_backend(const DeviceSpec& given, unsigned threads) {
  DeviceSpec spec = given;
  // A measuring aid: V4_DEVICE_Q8_0_LAYOUT=gguf keeps Q8_0 weights in the file's layout, to time
  // a whole forward against the split layout (the same bits either way).
  if (const char* layout = std::getenv("V4_DEVICE_Q8_0_LAYOUT");
      layout && !std::strcmp(layout, "gguf"))
    spec.ops.split_q8_0_weights = false;
  if (spec.emulated) {
    auto emulated = std::make_unique<EmulatedDeviceBackend>(kernels::HostExec{});
    emulated->set_op_options(spec.ops);
    return std::unique_ptr<Backend>(std::move(emulated));
  }
  if (spec.kind == DeviceKind::kCpu) {
    std::unique_ptr<Backend> cpu = std::make_unique<CpuBackend>(threads);
    // The device backends time their own ops; the CPU backend is timed from outside.
    if (std::getenv("V4_DEVICE_PROFILE"))
      return std::unique_ptr<Backend>(std::make_unique<ProfiledBackend>(std::move(cpu)));
    return cpu;
  }
#if V4_HAVE_CUDA
  return make_cuda_backend(spec.index, spec.ops);
#else
  return Status::error(
      "this build has no CUDA backend (nvcc was not found when it was configured)");
#endif
}

}  // namespace v4::device
