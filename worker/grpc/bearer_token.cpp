#include "worker/grpc/bearer_token.h"

#include <cstdint>

namespace v4::worker_grpc {

bool equal_in_constant_time(std::string_view a, std::string_view b) {
  // Every byte of `a` is compared (against a byte of `b` or against itself past b's end), and
  // the differences are OR-ed: no branch depends on the contents.
  uint8_t difference = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    const uint8_t other = i < b.size() ? static_cast<uint8_t>(b[i]) : static_cast<uint8_t>(~a[i]);
    difference |= static_cast<uint8_t>(a[i]) ^ other;
  }
  return difference == 0;
}

grpc::Status check_bearer_token(const grpc::ServerContext& context, const std::string& expected) {
  if (expected.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(grpc::string_ref(kAuthorizationKey.data(), kAuthorizationKey.size()));
  if (it == metadata.end())
    return {grpc::StatusCode::UNAUTHENTICATED,
            "this worker requires a token: the call carries no authorization metadata (give the "
            "router --workers-auth-token-file with the worker's token)"};
  const std::string_view value(it->second.data(), it->second.size());
  if (value.substr(0, kBearerPrefix.size()) != kBearerPrefix)
    return {grpc::StatusCode::UNAUTHENTICATED,
            "the authorization metadata is not of the form \"Bearer <token>\""};
  if (!equal_in_constant_time(expected, value.substr(kBearerPrefix.size())))
    return {grpc::StatusCode::UNAUTHENTICATED,
            "wrong token: the router's --workers-auth-token-file does not hold this worker's "
            "token"};
  return grpc::Status::OK;
}

}  // namespace v4::worker_grpc
