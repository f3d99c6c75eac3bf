#include "worker/ep/nccl/nccl_expert_comm.h"

#include <cuda_runtime.h>
#include <gloo/rendezvous/prefix_store.h>
#include <nccl.h>

#include <cstring>
#include <thread>
#include <vector>

namespace v4 {

struct NcclExpertComm::State {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t done = nullptr;
  int device = 0;
  std::chrono::milliseconds timeout{60000};
  bool aborted = false;
  void* staging = nullptr;  // all_gather's counts on the device
  size_t staging_bytes = 0;
};

namespace {

Status nccl_error(const char* what, ncclResult_t r) {
  return Status::error(std::string("expert parallelism (NCCL): ") + what +
                       " failed: " + ncclGetErrorString(r));
}

Status cuda_error(const char* what, cudaError_t e) {
  return Status::error(std::string("expert parallelism (CUDA): ") + what +
                       " failed: " + cudaGetErrorString(e));
}

}  // namespace

Result<std::unique_ptr<NcclExpertComm>> NcclExpertComm::connect(const NcclRendezvous& r) {
  if (!r.store) return Status::error("expert parallelism (NCCL): no rendezvous store");
  if (r.size < 1 || r.rank < 0 || r.rank >= r.size)
    return Status::error("expert parallelism (NCCL): rank " + std::to_string(r.rank) +
                         " is outside a group of " + std::to_string(r.size));
  auto state = std::make_unique<State>();
  state->device = r.device;
  state->timeout = r.timeout;
  if (cudaError_t e = cudaSetDevice(r.device); e != cudaSuccess)
    return cuda_error("cudaSetDevice", e);
  // Rank 0 makes the id; the others read it from the store (Gloo's stores throw on timeout).
  ncclUniqueId id;
  try {
    gloo::rendezvous::PrefixStore store(r.group + "/nccl", *r.store);
    if (r.rank == 0) {
      if (ncclResult_t n = ncclGetUniqueId(&id); n != ncclSuccess)
        return nccl_error("ncclGetUniqueId", n);
      store.set("unique-id", std::vector<char>(id.internal, id.internal + sizeof id.internal));
    } else {
      store.wait({"unique-id"}, r.timeout);
      const std::vector<char> bytes = store.get("unique-id");
      if (bytes.size() != sizeof id.internal)
        return Status::error("expert parallelism (NCCL): the rendezvous holds a unique id of " +
                             std::to_string(bytes.size()) + " bytes");
      std::memcpy(id.internal, bytes.data(), sizeof id.internal);
    }
  } catch (const std::exception& e) {
    return Status::error(std::string("expert parallelism (NCCL): exchanging the unique id: ") +
                         e.what());
  }
  // Non-blocking initialisation, so that a missing peer ends in a timeout, not a hang.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclResult_t n = ncclCommInitRankConfig(&state->comm, r.size, id, r.rank, &config);
  const auto deadline = std::chrono::steady_clock::now() + r.timeout;
  while (n == ncclInProgress || n == ncclSuccess) {
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(state->comm, &async);
    if (async == ncclSuccess) break;
    if (async != ncclInProgress) return nccl_error("joining the communicator", async);
    if (std::chrono::steady_clock::now() > deadline) {
      ncclCommAbort(state->comm);
      state->comm = nullptr;
      return Status::error("expert parallelism (NCCL): the group did not form within the timeout");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (n != ncclSuccess && n != ncclInProgress) return nccl_error("ncclCommInitRankConfig", n);
  if (cudaError_t e = cudaStreamCreateWithFlags(&state->stream, cudaStreamNonBlocking);
      e != cudaSuccess)
    return cuda_error("cudaStreamCreate", e);
  if (cudaError_t e = cudaEventCreateWithFlags(&state->done, cudaEventDisableTiming);
      e != cudaSuccess)
    return cuda_error("cudaEventCreate", e);
  return std::unique_ptr<NcclExpertComm>(new NcclExpertComm(std::move(state), r.rank, r.size));
}

NcclExpertComm::NcclExpertComm(std::unique_ptr<State> state, int rank, int size)
    : state_(std::move(state)), rank_(rank), size_(size) {}

NcclExpertComm::~NcclExpertComm() {
  cudaSetDevice(state_->device);
  if (state_->comm) {
    if (state_->aborted)
      ncclCommAbort(state_->comm);
    else
      ncclCommDestroy(state_->comm);
  }
  if (state_->staging) cudaFree(state_->staging);
  if (state_->done) cudaEventDestroy(state_->done);
  if (state_->stream) cudaStreamDestroy(state_->stream);
}

Status NcclExpertComm::finish(const char* what) {
  if (cudaError_t e = cudaEventRecord(state_->done, state_->stream); e != cudaSuccess)
    return cuda_error("cudaEventRecord", e);
  const auto deadline = std::chrono::steady_clock::now() + state_->timeout;
  for (;;) {
    const cudaError_t e = cudaEventQuery(state_->done);
    if (e == cudaSuccess) return Status::ok();
    if (e != cudaErrorNotReady) return cuda_error(what, e);
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(state_->comm, &async);
    if (async != ncclSuccess && async != ncclInProgress) {
      state_->aborted = true;
      return nccl_error(what, async);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      state_->aborted = true;
      ncclCommAbort(state_->comm);
      state_->comm = nullptr;
      return Status::error(std::string("expert parallelism (NCCL): ") + what +
                           " did not complete within the timeout: a peer is lost");
    }
    std::this_thread::yield();
  }
}

Status NcclExpertComm::all_gather(const int64_t* in, int64_t n, int64_t* out) {
  if (!state_->comm || state_->aborted)
    return Status::error("expert parallelism (NCCL): the communicator was aborted");
  const size_t bytes = static_cast<size_t>(n) * sizeof(int64_t) * (size_ + 1);
  if (state_->staging_bytes < bytes) {
    if (state_->staging) cudaFree(state_->staging);
    state_->staging = nullptr;
    state_->staging_bytes = 0;
    if (cudaError_t e = cudaMalloc(&state_->staging, bytes); e != cudaSuccess)
      return cuda_error("cudaMalloc", e);
    state_->staging_bytes = bytes;
  }
  auto* send = static_cast<int64_t*>(state_->staging);
  int64_t* recv = send + n;
  const size_t count = static_cast<size_t>(n) * sizeof(int64_t);
  if (cudaError_t e = cudaMemcpyAsync(send, in, count, cudaMemcpyHostToDevice, state_->stream);
      e != cudaSuccess)
    return cuda_error("cudaMemcpyAsync", e);
  ncclResult_t r =
      ncclAllGather(send, recv, static_cast<size_t>(n), ncclInt64, state_->comm, state_->stream);
  if (r != ncclSuccess && r != ncclInProgress) return nccl_error("ncclAllGather", r);
  if (cudaError_t e =
          cudaMemcpyAsync(out, recv, count * size_, cudaMemcpyDeviceToHost, state_->stream);
      e != cudaSuccess)
    return cuda_error("cudaMemcpyAsync", e);
  return finish("all-gather");
}

Status NcclExpertComm::all_to_all(const void* send, std::span<const int64_t> send_bytes, void* recv,
                                  std::span<const int64_t> recv_bytes) {
  if (!state_->comm || state_->aborted)
    return Status::error("expert parallelism (NCCL): the communicator was aborted");
  if (static_cast<int>(send_bytes.size()) != size_ || static_cast<int>(recv_bytes.size()) != size_)
    return Status::error("expert parallelism (NCCL): all-to-all counts for the wrong group size");
  // Point-to-point pairs in one group call: NCCL's way of a variable-size all-to-all.
  ncclGroupStart();
  int64_t send_at = 0, recv_at = 0;
  for (int peer = 0; peer < size_; ++peer) {
    const int64_t out = send_bytes[static_cast<size_t>(peer)];
    const int64_t in = recv_bytes[static_cast<size_t>(peer)];
    if (out > 0)
      ncclSend(static_cast<const char*>(send) + send_at, static_cast<size_t>(out), ncclUint8, peer,
               state_->comm, state_->stream);
    if (in > 0)
      ncclRecv(static_cast<char*>(recv) + recv_at, static_cast<size_t>(in), ncclUint8, peer,
               state_->comm, state_->stream);
    send_at += out;
    recv_at += in;
  }
  ncclResult_t r = ncclGroupEnd();
  if (r != ncclSuccess && r != ncclInProgress) return nccl_error("the all-to-all", r);
  return finish("all-to-all");
}

}  // namespace v4
