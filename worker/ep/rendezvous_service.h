// The rendezvous store rank 0 of a worker group serves (proto/group.proto): the place the ranks
// meet, by name, before their collectives connect to each other directly. Bounded: at most
// kMaxKeys keys of at most kMaxValueBytes each, so a confused or hostile peer cannot grow it
// without limit, and a Get waits at most kMaxWaitMs per call (clients call again).
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

#include "proto/group.grpc.pb.h"

namespace v4 {

class RendezvousService final : public v4serve::group::v1::Rendezvous::Service {
 public:
  static constexpr size_t kMaxKeys = 4096;
  static constexpr size_t kMaxKeyBytes = 512;
  static constexpr size_t kMaxValueBytes = 64 << 10;
  static constexpr uint32_t kMaxWaitMs = 5000;

  grpc::Status Set(grpc::ServerContext* context, const v4serve::group::v1::SetRequest* request,
                   v4serve::group::v1::SetReply* reply) override;
  grpc::Status Get(grpc::ServerContext* context, const v4serve::group::v1::GetRequest* request,
                   v4serve::group::v1::GetReply* reply) override;

  size_t keys() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::string> values_;
};

}  // namespace v4
