#include "worker/ep/gloo_expert_comm.h"

#include <gloo/allgather.h>
#include <gloo/alltoallv.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include <csignal>
#include <exception>
#include <memory>
#include <vector>

namespace v4 {
namespace {

// Gloo reports a lost or timed-out peer by throwing; the group is unusable after that.
template <class Fn>
Status guarded(const char* what, Fn&& fn) {
  try {
    fn();
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error(std::string("expert parallelism: ") + what + " failed: " + e.what());
  }
}

}  // namespace

GlooExpertComm::GlooExpertComm(std::shared_ptr<gloo::Context> context, int rank, int size)
    : context_(std::move(context)), rank_(rank), size_(size) {}

GlooExpertComm::~GlooExpertComm() = default;

Result<std::unique_ptr<GlooExpertComm>> GlooExpertComm::connect(const GlooRendezvous& r) {
  if (r.size < 1 || r.rank < 0 || r.rank >= r.size) {
    return Status::error("expert parallelism: rank " + std::to_string(r.rank) +
                         " is outside a group of " + std::to_string(r.size));
  }
  // Gloo writes to its sockets without MSG_NOSIGNAL: a peer that left would kill this process
  // with SIGPIPE instead of failing the collective with an error. Ignored process-wide, as
  // network servers do (gRPC sends with MSG_NOSIGNAL, so nothing else relies on the signal).
  std::signal(SIGPIPE, SIG_IGN);
  std::shared_ptr<gloo::rendezvous::Context> context;
  const Status s = guarded("connecting the group", [&] {
    gloo::transport::tcp::attr attr;
    attr.hostname = r.host;
    auto device = gloo::transport::tcp::CreateDevice(attr);
    std::unique_ptr<gloo::rendezvous::FileStore> files;
    if (!r.store) files = std::make_unique<gloo::rendezvous::FileStore>(r.store_dir);
    gloo::rendezvous::PrefixStore store(r.group, r.store ? *r.store : *files);
    context = std::make_shared<gloo::rendezvous::Context>(r.rank, r.size);
    context->setTimeout(r.timeout);
    context->connectFullMesh(store, device);
  });
  if (!s) return s;
  return std::unique_ptr<GlooExpertComm>(new GlooExpertComm(context, r.rank, r.size));
}

Status GlooExpertComm::all_gather(const int64_t* in, int64_t n, int64_t* out) {
  return guarded("all-gather", [&] {
    gloo::AllgatherOptions opts(context_);
    opts.setInput(const_cast<int64_t*>(in), static_cast<size_t>(n));
    opts.setOutput(out, static_cast<size_t>(n) * size_);
    opts.setTag(tag_++);
    gloo::allgather(opts);
  });
}

Status GlooExpertComm::all_to_all(const void* send, std::span<const int64_t> send_bytes, void* recv,
                                  std::span<const int64_t> recv_bytes) {
  if (static_cast<int>(send_bytes.size()) != size_ ||
      static_cast<int>(recv_bytes.size()) != size_) {
    return Status::error("expert parallelism: all-to-all counts for the wrong group size");
  }
  // Gloo reads element counts; bytes are the elements here.
  std::vector<int64_t> in(send_bytes.begin(), send_bytes.end());
  std::vector<int64_t> out(recv_bytes.begin(), recv_bytes.end());
  // A zero-sized buffer still needs an address Gloo can register.
  static char empty = 0;
  return guarded("all-to-all", [&] {
    gloo::AlltoallvOptions opts(context_);
    opts.setInput(send ? static_cast<char*>(const_cast<void*>(send)) : &empty, std::move(in));
    opts.setOutput(recv ? static_cast<char*>(recv) : &empty, std::move(out));
    opts.setTag(tag_++);
    gloo::alltoallv(opts);
  });
}

}  // namespace v4
