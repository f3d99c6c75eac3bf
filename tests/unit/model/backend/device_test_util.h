// Shared by the device-backend tests: host vectors in a backend's memory and back, and the
// backends under test. Each device test runs once per backend: "emulated" (the device ops on the
// host executor, everywhere) and "cuda" (skipped, saying why, where no GPU is usable).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/quant.h"
#include "model/backend/backend.h"
#include "model/backend/cpu_backend.h"
#include "model/backend/device/backend_factory.h"
#include "model/backend/device/emulated_backend.h"

namespace v4::testing_device {

template <class T>
struct OnDevice {
  std::unique_ptr<DeviceBuffer> buffer;
  size_t count = 0;
  T* get() const { return static_cast<T*>(buffer->data()); }
  Tensor tensor() const {
    return Tensor::contiguous(buffer.get(), 0, GgmlType::I8,
                              {static_cast<int64_t>(count * sizeof(T)), 1, 1, 1});
  }
};

template <class T>
OnDevice<T> upload(Backend& be, const std::vector<T>& host) {
  OnDevice<T> d{be.allocate(std::max<size_t>(host.size(), 1) * sizeof(T)), host.size()};
  if (!host.empty()) {
    const Status s = be.copy_to_device(host.data(), d.tensor(), 0, host.size() * sizeof(T));
    EXPECT_TRUE(s.is_ok()) << s.message();
  }
  return d;
}

template <class T>
OnDevice<T> zeros_on(Backend& be, size_t count) {
  return upload(be, std::vector<T>(count, T{}));
}

template <class T>
std::vector<T> download(Backend& be, const OnDevice<T>& d) {
  std::vector<T> host(d.count);
  if (d.count) {
    const Status s = be.copy_to_host(d.tensor(), 0, host.data(), d.count * sizeof(T));
    EXPECT_TRUE(s.is_ok()) << s.message();
  }
  return host;
}

// "emulated" or "cuda" with the given op options: the backend, or a skip (GTEST_SKIP from the
// caller) with the reason.
inline std::unique_ptr<Backend> make_device_backend(const std::string& name, std::string* why,
                                                    const device::DeviceOpOptions& ops = {}) {
  device::DeviceSpec spec{DeviceKind::kCuda, 0};
  spec.emulated = name == "emulated";
  spec.ops = ops;
  Result<std::unique_ptr<Backend>> be = device::make_backend(spec, 1);
  if (!be) {
    *why = "no usable GPU, CUDA variant skipped: " + be.message();
    return nullptr;
  }
  return std::move(*be);
}

// n floats drawn from N(0, scale²), the same for the same seed.
inline std::vector<float> randoms(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// rows × cols weights drawn from N(0, 0.25) and quantized to `type` (whole blocks per row).
inline std::vector<uint8_t> quantized_weights(GgmlType type, int64_t rows, int64_t cols,
                                              uint32_t seed) {
  const std::optional<uint64_t> size = ggml_row_size(type, cols);
  EXPECT_TRUE(size.has_value()) << cols << " values are not whole blocks of "
                                << ggml_type_name(type);
  const size_t row_bytes = size.value_or(0);
  std::vector<uint8_t> bytes(row_bytes * rows);
  const std::vector<float> values = randoms(rows * cols, seed, 0.5f);
  for (int64_t r = 0; r < rows; ++r) {
    kernels::quantize_row(type, values.data() + r * cols, bytes.data() + r * row_bytes, cols);
  }
  return bytes;
}

// A test run once per device backend (device_backend_names), skipped with the reason where that
// backend is not usable; `cpu_` is the reference backend.
class OnEachDevice : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why;
    be_ = make_device_backend(GetParam(), &why);
    if (!be_) GTEST_SKIP() << why;
  }
  std::unique_ptr<Backend> be_;
  CpuBackend cpu_{2};
};

// The parameter set of every device test.
inline ::testing::internal::ParamGenerator<std::string> device_backend_names() {
  return ::testing::Values(std::string("emulated"), std::string("cuda"));
}

}  // namespace v4::testing_device
