// The worker's side of the shared token (docs/design.md, "Securing the link"): every call must
// carry `authorization: Bearer <token>` metadata with the token of --auth-token-file. gRPC's
// AuthMetadataProcessor runs on TLS connections only, and the token must also work on a
// loopback link without TLS, so each method of the service asks this check first.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>
#include <string_view>

namespace v4::worker_grpc {

// The metadata key and value prefix the router sends (router/grpc/worker_link.cpp).
inline constexpr std::string_view kAuthorizationKey = "authorization";
inline constexpr std::string_view kBearerPrefix = "Bearer ";

// True when a and b are equal, in a time that depends on their lengths only (not on where the
// first difference is), so response times do not reveal a token a character at a time.
bool equal_in_constant_time(std::string_view a, std::string_view b);

// OK when `expected` is empty (no token configured) or the call carries it; UNAUTHENTICATED
// with a message saying what is missing or wrong otherwise.
grpc::Status check_bearer_token(const grpc::ServerContext& context, const std::string& expected);

}  // namespace v4::worker_grpc
