// gRPC status codes by their canonical names (UNAVAILABLE, UNAUTHENTICATED, ...), for the
// router's log lines and the reason label of its ejection counter.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string_view>

namespace v4::router_grpc {

std::string_view status_code_name(grpc::StatusCode code);

}  // namespace v4::router_grpc
