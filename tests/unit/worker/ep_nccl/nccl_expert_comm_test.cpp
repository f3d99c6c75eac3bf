// The NCCL expert communicator against what its collectives must do, on the one GPU a test
// machine has: a one-rank group that meets through the gRPC rendezvous store (as a GPU worker
// group's ranks do) gathers and exchanges exactly; a rank whose peer never joins gives up within
// the timeout instead of hanging. Without a GPU these tests skip, saying so.
#include "worker/ep/nccl/nccl_expert_comm.h"

#include <cuda_runtime.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "tests/unit/common/free_port.h"
#include "worker/ep/grpc_rendezvous_store.h"
#include "worker/ep/rendezvous_service.h"

namespace v4 {
namespace {

using namespace std::chrono_literals;

using test::free_port;

class NcclExpertCommTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int devices = 0;
    const cudaError_t e = cudaGetDeviceCount(&devices);
    if (e != cudaSuccess || devices == 0)
      GTEST_SKIP() << "no CUDA device (" << cudaGetErrorString(e) << "): NCCL tests need a GPU";
    const std::string address = "127.0.0.1:" + std::to_string(free_port());
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials());
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_);
    store_ = std::make_unique<GrpcRendezvousStore>(address, 10s);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 1s);
  }

  NcclRendezvous rendezvous(int rank, int size, std::chrono::milliseconds timeout) {
    NcclRendezvous r;
    r.store = store_.get();
    r.group = "nccl-test";
    r.rank = rank;
    r.size = size;
    r.timeout = timeout;
    return r;
  }

  RendezvousService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<GrpcRendezvousStore> store_;
};

TEST_F(NcclExpertCommTest, OneRankGathersAndExchangesExactly) {
  Result<std::unique_ptr<NcclExpertComm>> comm = NcclExpertComm::connect(rendezvous(0, 1, 30s));
  ASSERT_TRUE(comm) << comm.message();
  const std::vector<int64_t> counts = {3, -1, 1LL << 40};
  std::vector<int64_t> gathered(counts.size(), 0);
  ASSERT_TRUE((*comm)->all_gather(counts.data(), 3, gathered.data()));
  EXPECT_EQ(gathered, counts);

  // A buffer of odd size with every byte distinct enough to catch an offset or a truncation.
  const int64_t bytes = 1000003;
  std::vector<uint8_t> host(bytes);
  for (int64_t i = 0; i < bytes; ++i) host[i] = static_cast<uint8_t>((i * 131 + 7) % 251);
  void *send = nullptr, *recv = nullptr;
  ASSERT_EQ(cudaMalloc(&send, bytes), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&recv, bytes), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(send, host.data(), bytes, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemset(recv, 0, bytes), cudaSuccess);
  const std::vector<int64_t> sizes = {bytes};
  ASSERT_TRUE((*comm)->all_to_all(send, sizes, recv, sizes));
  std::vector<uint8_t> back(bytes);
  ASSERT_EQ(cudaMemcpy(back.data(), recv, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(back, host);
  const std::vector<int64_t> wrong = {bytes, bytes};
  EXPECT_FALSE((*comm)->all_to_all(send, wrong, recv, wrong)) << "counts for two ranks";
  cudaFree(send);
  cudaFree(recv);
}

TEST_F(NcclExpertCommTest, APeerThatNeverJoinsEndsInATimeout) {
  const auto start = std::chrono::steady_clock::now();
  Result<std::unique_ptr<NcclExpertComm>> comm = NcclExpertComm::connect(rendezvous(0, 2, 3s));
  EXPECT_FALSE(comm);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
}

TEST(NcclExpertCommFlagsTest, ARankOutsideTheGroupIsRefused) {
  NcclRendezvous r;
  GrpcRendezvousStore store("127.0.0.1:1", 1s);
  r.store = &store;
  r.rank = 2;
  r.size = 2;
  Result<std::unique_ptr<NcclExpertComm>> comm = NcclExpertComm::connect(r);
  ASSERT_FALSE(comm);
  EXPECT_NE(comm.message().find("outside a group"), std::string::npos) << comm.message();
}

}  // namespace
}  // namespace v4
