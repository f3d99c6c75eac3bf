#include "worker/ep/rendezvous_service.h"

#include <algorithm>
#include <chrono>

namespace v4 {

namespace pb = v4serve::group::v1;

grpc::Status RendezvousService::Set(grpc::ServerContext*, const pb::SetRequest* request,
                                    pb::SetReply*) {
  if (request->key().empty() || request->key().size() > kMaxKeyBytes)
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "a rendezvous key must have 1 to " + std::to_string(kMaxKeyBytes) + " bytes"};
  if (request->value().size() > kMaxValueBytes)
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "a rendezvous value may have at most " + std::to_string(kMaxValueBytes) + " bytes"};
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = values_.find(request->key());
  if (it != values_.end()) {
    if (it->second == request->value()) return grpc::Status::OK;
    return {grpc::StatusCode::ALREADY_EXISTS,
            "rendezvous key '" + request->key() +
                "' already holds another value (a rank restarted into a group that already met: "
                "restart the whole group)"};
  }
  if (values_.size() >= kMaxKeys)
    return {grpc::StatusCode::RESOURCE_EXHAUSTED,
            "the rendezvous store holds its maximum of " + std::to_string(kMaxKeys) + " keys"};
  values_.emplace(request->key(), request->value());
  changed_.notify_all();
  return grpc::Status::OK;
}

grpc::Status RendezvousService::Get(grpc::ServerContext* context, const pb::GetRequest* request,
                                    pb::GetReply* reply) {
  if (request->keys_size() == 0 || static_cast<size_t>(request->keys_size()) > kMaxKeys)
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "a rendezvous Get names 1 to " + std::to_string(kMaxKeys) + " keys"};
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(std::min(request->wait_ms(), kMaxWaitMs));
  std::unique_lock<std::mutex> lock(mutex_);
  auto all_present = [&] {
    return std::all_of(request->keys().begin(), request->keys().end(),
                       [&](const std::string& k) { return values_.count(k) != 0; });
  };
  // Wakes at least every 100 ms to notice a caller that went away.
  while (!all_present()) {
    if (context->IsCancelled()) return {grpc::StatusCode::CANCELLED, "caller went away"};
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      return {grpc::StatusCode::DEADLINE_EXCEEDED, "rendezvous keys not yet written"};
    changed_.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(100)));
  }
  if (request->want_values())
    for (const std::string& k : request->keys()) reply->add_values(values_.at(k));
  return grpc::Status::OK;
}

size_t RendezvousService::keys() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return values_.size();
}

}  // namespace v4
