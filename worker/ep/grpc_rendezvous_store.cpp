#include "worker/ep/grpc_rendezvous_store.h"

#include <algorithm>
#include <stdexcept>
#include <thread>

namespace v4 {

namespace pb = v4serve::group::v1;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::chrono::milliseconds kRetryPause{100};
constexpr std::chrono::milliseconds kMaxServerWait{5000};  // RendezvousService::kMaxWaitMs

std::runtime_error failure(const std::string& leader, const std::string& what,
                           const grpc::Status& status) {
  return std::runtime_error("group rendezvous at " + leader + ": " + what + ": " +
                            status.error_message());
}

// Ranks start in any order, so the first calls often find no leader yet: reconnect quickly
// (gRPC's default backoff grows to minutes) so that the group meets as soon as rank 0 listens.
std::shared_ptr<grpc::Channel> channel(const std::string& leader) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return grpc::CreateCustomChannel(leader, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

GrpcRendezvousStore::GrpcRendezvousStore(const std::string& leader,
                                         std::chrono::milliseconds timeout)
    : leader_(leader), timeout_(timeout), stub_(pb::Rendezvous::NewStub(channel(leader))) {}

void GrpcRendezvousStore::set(const std::string& key, const std::vector<char>& data) {
  const auto deadline = Clock::now() + timeout_;
  pb::SetRequest request;
  request.set_key(key);
  request.set_value(std::string(data.begin(), data.end()));
  for (;;) {
    grpc::ClientContext context;
    context.set_wait_for_ready(true);  // a leader not up yet is waited for, to the deadline
    context.set_deadline(std::chrono::system_clock::now() + (deadline - Clock::now()));
    pb::SetReply reply;
    const grpc::Status status = stub_->Set(&context, request, &reply);
    if (status.ok()) return;
    // The leader may still be loading its weights: its port opens when it is ready to meet.
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE ||
        Clock::now() + kRetryPause > deadline)
      throw failure(leader_, "writing '" + key + "'", status);
    std::this_thread::sleep_for(kRetryPause);
  }
}

std::vector<char> GrpcRendezvousStore::get(const std::string& key) {
  const std::vector<std::string> values = fetch({key}, true, timeout_);
  return {values.at(0).begin(), values.at(0).end()};
}

void GrpcRendezvousStore::wait(const std::vector<std::string>& keys,
                               const std::chrono::milliseconds& timeout) {
  fetch(keys, false, timeout);
}

std::vector<std::string> GrpcRendezvousStore::fetch(const std::vector<std::string>& keys,
                                                    bool values,
                                                    std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  pb::GetRequest request;
  for (const std::string& k : keys) request.add_keys(k);
  request.set_want_values(values);
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    request.set_wait_ms(static_cast<uint32_t>(
        std::clamp(left, std::chrono::milliseconds(0), kMaxServerWait).count()));
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    // The server answers within wait_ms; the call's own deadline leaves it a second more.
    context.set_deadline(std::chrono::system_clock::now() + std::max(left, kRetryPause) +
                         std::chrono::seconds(1));
    pb::GetReply reply;
    const grpc::Status status = stub_->Get(&context, request, &reply);
    if (status.ok()) return {reply.values().begin(), reply.values().end()};
    const bool retry = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!retry || Clock::now() >= deadline)
      throw failure(leader_,
                    "waiting for the other ranks (" + std::to_string(keys.size()) +
                        " keys, first '" + keys.front() + "')",
                    status);
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE)
      std::this_thread::sleep_for(kRetryPause);
  }
}

}  // namespace v4
