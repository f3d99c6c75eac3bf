// The device backends' memory and copies, and the --device parser.
#include <gtest/gtest.h>

#include "tests/unit/model/backend/device_test_util.h"

namespace v4 {
namespace {

using testing_device::download;
using testing_device::upload;

class DeviceBackendMemory : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why;
    be_ = testing_device::make_device_backend(GetParam(), &why);
    if (!be_) GTEST_SKIP() << why;
  }
  std::unique_ptr<Backend> be_;
};

TEST_P(DeviceBackendMemory, CopiesRoundTripAndStayInsideTheirTensor) {
  const std::vector<int32_t> host = {1, -2, 3, 1 << 30};
  auto d = upload(*be_, host);
  EXPECT_EQ(download(*be_, d), host);
  auto other = testing_device::zeros_on<int32_t>(*be_, 4);
  be_->copy_on_device(d.get() + 1, other.get(), 2 * sizeof(int32_t));
  EXPECT_EQ(download(*be_, other), (std::vector<int32_t>{-2, 3, 0, 0}));
  int32_t sink[8];
  const Status s = be_->copy_to_host(d.tensor(), 8, sink, 16);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("outside"), std::string::npos) << s.message();
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceBackendMemory, testing_device::device_backend_names());

TEST(ParseDevice, AcceptsCpuCudaCudaIndexAndEmulatedOnly) {
  EXPECT_EQ(device::parse_device("cpu")->kind, DeviceKind::kCpu);
  EXPECT_EQ(device::parse_device("cuda")->kind, DeviceKind::kCuda);
  EXPECT_EQ(device::parse_device("cuda:3")->index, 3);
  EXPECT_TRUE(device::parse_device("emulated")->emulated);
  EXPECT_EQ(device::parse_device("emulated")->emulated_bytes, 0u);  // the host's memory
  EXPECT_EQ(device::parse_device("emulated:80")->emulated_bytes, uint64_t{80} << 30);
  EXPECT_EQ(device::parse_device("emulated:1.5")->emulated_bytes, uint64_t{3} << 29);
  for (const char* bad : {"", "gpu", "cuda:", "cuda:-1", "cuda:x", "cuda:1x", "CPU", "emulated:",
                          "emulated:0", "emulated:-2", "emulated:2G", "emulated:nan"}) {
    Result<device::DeviceSpec> r = device::parse_device(bad);
    EXPECT_FALSE(r.is_ok()) << bad;
    if (!r) {
      EXPECT_NE(r.message().find("cpu, cuda or cuda:N"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace v4
