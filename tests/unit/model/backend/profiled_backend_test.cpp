// ProfiledBackend (V4_DEVICE_PROFILE on the CPU) only watches: every op it forwards gives the
// wrapped backend's result bit for bit, and each call lands in the table under its op name,
// matrix products under their weight type and shape.
#include "model/backend/profiled_backend.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/quant.h"
#include "model/backend/cpu_backend.h"

namespace v4 {
namespace {

TEST(ProfiledBackend, ForwardsEveryOpUnchangedAndCountsItByName) {
  constexpr int64_t kCols = 256, kRows = 8, kTokens = 3;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> dense(static_cast<size_t>(kCols * kRows));
  for (float& v : dense) v = normal(rng);
  const size_t row_bytes = *ggml_row_size(GgmlType::Q8_0, kCols);
  std::vector<uint8_t> q(row_bytes * kRows);
  for (int64_t r = 0; r < kRows; ++r) {
    kernels::quantize_row(GgmlType::Q8_0, &dense[static_cast<size_t>(r * kCols)],
                          &q[row_bytes * static_cast<size_t>(r)], kCols);
  }
  const kernels::MatrixView w{GgmlType::Q8_0, q.data(), kCols, kRows, row_bytes};
  std::vector<float> x(static_cast<size_t>(kCols * kTokens));
  for (float& v : x) v = normal(rng);

  CpuBackend plain(2);
  ProfiledBackend profiled(std::make_unique<CpuBackend>(2));
  std::vector<float> y_plain(kRows * kTokens), y_profiled(kRows * kTokens);
  plain.matmul(w, x.data(), kTokens, y_plain.data());
  profiled.matmul(w, x.data(), kTokens, y_profiled.data());
  profiled.matmul(w, x.data(), kTokens, y_profiled.data());
  EXPECT_EQ(std::memcmp(y_plain.data(), y_profiled.data(), y_plain.size() * sizeof(float)), 0);

  std::vector<float> n_plain(x.size()), n_profiled(x.size());
  plain.rms_norm(x.data(), nullptr, kCols, kTokens, 1e-6f, n_plain.data());
  profiled.rms_norm(x.data(), nullptr, kCols, kTokens, 1e-6f, n_profiled.data());
  EXPECT_EQ(std::memcmp(n_plain.data(), n_profiled.data(), n_plain.size() * sizeof(float)), 0);

  const auto& entries = profiled.profile().entries();
  ASSERT_EQ(entries.size(), 2u);
  ASSERT_TRUE(entries.count("matmul Q8_0 256x8"));
  EXPECT_EQ(entries.at("matmul Q8_0 256x8").calls, 2u);
  EXPECT_GT(entries.at("matmul Q8_0 256x8").seconds, 0.0);
  ASSERT_TRUE(entries.count("rms_norm"));
  EXPECT_EQ(entries.at("rms_norm").calls, 1u);
  EXPECT_EQ(profiled.threads(), plain.threads());
}

// Backend::profile_section splits the table by part of the run: each op call lands in the part
// named last before it, naming a part again adds to it, and entries() sums the parts.
TEST(ProfiledBackend, OpsLandInThePartOfTheRunNamedBeforeThem) {
  ProfiledBackend profiled(std::make_unique<CpuBackend>(1));
  std::vector<float> x(64, 1.0f), y(64);
  profiled.rms_norm(x.data(), nullptr, 16, 4, 1e-6f, y.data());
  profiled.profile_section("prefill");
  profiled.rms_norm(x.data(), nullptr, 16, 4, 1e-6f, y.data());
  profiled.scale(y.data(), 64, 2.0f);
  profiled.profile_section("decode steps");
  profiled.scale(y.data(), 64, 2.0f);
  profiled.profile_section("prefill");
  profiled.scale(y.data(), 64, 2.0f);
  const OpProfile& p = profiled.profile();
  EXPECT_EQ(p.section("").at("rms_norm").calls, 1u);
  EXPECT_EQ(p.section("prefill").at("rms_norm").calls, 1u);
  EXPECT_EQ(p.section("prefill").at("scale").calls, 2u);
  EXPECT_EQ(p.section("decode steps").size(), 1u);
  EXPECT_EQ(p.section("decode steps").at("scale").calls, 1u);
  EXPECT_TRUE(p.section("never named").empty());
  EXPECT_EQ(p.entries().at("rms_norm").calls, 2u);
  EXPECT_EQ(p.entries().at("scale").calls, 3u);
}

}  // namespace
}  // namespace v4
