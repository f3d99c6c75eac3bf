// CUDA dequantization against the CPU reference, bit for bit. Skips, saying why, where no GPU
// is usable (no driver or no device).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/quant.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/dequantize_cuda.h"

namespace v4::kernels::cuda {
namespace {

class DequantizeCuda : public ::testing::Test {
protected:
  void SetUp() override {
    const CudaAvailability gpu = cuda_availability();
    if (!gpu.available) GTEST_SKIP() << "no usable GPU, CUDA test skipped: " << gpu.reason;
  }

  // Uploads `bytes`, dequantizes on the device and returns the floats.
  std::vector<float> run(GgmlType type, const std::vector<uint8_t>& bytes, int64_t n) {
    void* src = nullptr;
    float* dst = nullptr;
    EXPECT_EQ(cudaMalloc(&src, bytes.size()), cudaSuccess);
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&dst), n * sizeof(float)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(src, bytes.data(), bytes.size(), cudaMemcpyHostToDevice), cudaSuccess);
    const Status s = dequantize_device(type, src, dst, n);
    EXPECT_TRUE(s.is_ok()) << s.message();
    std::vector<float> out(n);
    EXPECT_EQ(cudaMemcpy(out.data(), dst, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(src);
    cudaFree(dst);
    return out;
  }
};

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

TEST_F(DequantizeCuda, Q8_0MatchesCpuBitForBit) {
  const int64_t n = 32 * 1000 + 32 * 7;  // not a multiple of the thread block
  const std::vector<float> x = random_values(n, 1);
  std::vector<uint8_t> q(*ggml_row_size(GgmlType::Q8_0, n));
  quantize_row(GgmlType::Q8_0, x.data(), q.data(), n);
  std::vector<float> want(n);
  dequantize_row(GgmlType::Q8_0, q.data(), want.data(), n);
  const std::vector<float> got = run(GgmlType::Q8_0, q, n);
  ASSERT_EQ(std::memcmp(got.data(), want.data(), n * sizeof(float)), 0);
}

TEST_F(DequantizeCuda, F16MatchesCpuBitForBit) {
  const int64_t n = 4099;
  std::vector<uint8_t> h(n * 2);
  std::mt19937 rng(2);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t bits = static_cast<uint16_t>(rng());
    if ((bits & 0x7C00u) == 0x7C00u) bits &= 0xBFFFu;  // keep inf/NaN out of the comparison
    std::memcpy(&h[2 * i], &bits, 2);
  }
  std::vector<float> want(n);
  dequantize_row(GgmlType::F16, h.data(), want.data(), n);
  const std::vector<float> got = run(GgmlType::F16, h, n);
  ASSERT_EQ(std::memcmp(got.data(), want.data(), n * sizeof(float)), 0);
}

}  // namespace
}  // namespace v4::kernels::cuda
