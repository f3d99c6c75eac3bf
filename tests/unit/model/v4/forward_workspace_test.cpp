// What a server reserves for the forward's step workspace before the weights go to the device
// (ForwardWorkspace::bytes_for) is what the workspace then allocates for steps of that size.
#include <gtest/gtest.h>

#include "model/backend/device/emulated_backend.h"
#include "model/synthetic/synthetic_model.h"
#include "model/v4/forward_workspace.h"

namespace v4 {
namespace {

TEST(ForwardWorkspace, ReservedBytesAreWhatTheWorkspaceAllocates) {
  Result<V4Config> config = synthetic_preset("tiny");
  ASSERT_TRUE(config) << config.message();
  device::EmulatedDeviceBackend backend(kernels::HostExec{});
  uint64_t previous = 0;
  for (int64_t tokens : {1, 63, 64, 65, 300}) {
    ForwardWorkspace ws(backend);
    ws.ensure(*config, tokens);
    const uint64_t reserved = ForwardWorkspace::bytes_for(*config, tokens);
    EXPECT_EQ(reserved, ws.bytes()) << tokens << " tokens";
    EXPECT_GT(reserved, previous) << tokens << " tokens";
    previous = reserved;
  }
}

}  // namespace
}  // namespace v4
