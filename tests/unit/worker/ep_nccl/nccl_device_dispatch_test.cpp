// A GPU rank's expert dispatch over NCCL against the one-device forward, on the one GPU a test
// machine has (NCCL gives a communicator one rank per GPU, so two ranks need two GPUs): a
// one-rank group whose device holds its experts compacted (held_experts) and whose rows go
// through the device dispatcher's pack, NCCL's all-gather and (empty) all-to-all and unpack must
// give the local dispatcher's logits bit for bit. Without a GPU it skips, saying so.
#include <cuda_runtime.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstring>

#include "model/v4/device_weights.h"
#include "tests/unit/common/free_port.h"
#include "tests/unit/model/backend/device_test_util.h"
#include "tests/unit/worker/tiny_engine_fixture.h"
#include "worker/ep/ep_expert_dispatcher.h"
#include "worker/ep/grpc_rendezvous_store.h"
#include "worker/ep/nccl/nccl_expert_comm.h"
#include "worker/ep/rendezvous_service.h"

namespace v4 {
namespace {

using namespace std::chrono_literals;

// Two sequences: a prefill step, then three greedy decode steps; every step's logits.
Result<std::vector<float>> run_steps(V4Forward& forward, const std::vector<int32_t>& a,
                                     const std::vector<int32_t>& b) {
  const uint32_t vocab = forward.weights().config.n_vocab;
  ContiguousKvState sa(forward.weights().config, forward.backend());
  ContiguousKvState sb(forward.weights().config, forward.backend());
  std::vector<std::vector<int32_t>> next = {a, b};
  std::vector<float> all;
  ForwardOutput out;
  for (int step = 0; step < 4; ++step) {
    std::vector<SequenceInput> inputs = {{&sa, next[0]}, {&sb, next[1]}};
    if (Status s = forward.forward(inputs, out); !s) return s;
    all.insert(all.end(), out.logits.begin(), out.logits.end());
    for (size_t s = 0; s < 2; ++s) {
      const float* row = &out.logits[(out.first_row[s] + out.row_count[s] - 1) * vocab];
      next[s] = {static_cast<int32_t>(std::max_element(row, row + vocab) - row)};
    }
  }
  return all;
}

class NcclDeviceDispatchTest : public EngineTest {};

TEST_F(NcclDeviceDispatchTest, OneGpuRankMatchesTheLocalDispatcherBitForBit) {
  std::string why;
  std::unique_ptr<Backend> backend = testing_device::make_device_backend("cuda", &why);
  if (!backend) GTEST_SKIP() << why;
  RendezvousService service;
  const std::string address = "127.0.0.1:" + std::to_string(test::free_port());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_TRUE(server);
  GrpcRendezvousStore store(address, 10s);
  NcclRendezvous rv;
  rv.store = &store;
  rv.group = "nccl-dispatch";
  Result<std::unique_ptr<NcclExpertComm>> comm = NcclExpertComm::connect(rv);
  ASSERT_TRUE(comm) << comm.message();

  const V4Config& c = weights().config;
  const ExpertPlacement placement(c.n_expert, 1);
  const ExpertTiers held = held_experts(placement, 0, c.n_layer);
  Result<std::unique_ptr<DeviceWeights>> compact =
      DeviceWeights::upload(weights(), *backend, {}, {}, &held);
  Result<std::unique_ptr<DeviceWeights>> whole = DeviceWeights::upload(weights(), *backend);
  ASSERT_TRUE(compact && whole);
  EpExpertDispatcher experts(*backend, **comm, placement, true, true);
  V4Forward grouped((*compact)->weights(), *backend, &experts);
  V4Forward local((*whole)->weights(), *backend);
  const std::vector<int32_t> a = prompt(19, 3), b = prompt(7, 4);
  Result<std::vector<float>> got = run_steps(grouped, a, b);
  Result<std::vector<float>> want = run_steps(local, a, b);
  ASSERT_TRUE(got) << got.message();
  ASSERT_TRUE(want) << want.message();
  ASSERT_EQ(got->size(), want->size());
  EXPECT_EQ(0, std::memcmp(got->data(), want->data(), got->size() * sizeof(float)));
  EXPECT_GT(experts.traffic().exchanges, 0u);
  server->Shutdown(std::chrono::system_clock::now() + 1s);
}

}  // namespace
}  // namespace v4
