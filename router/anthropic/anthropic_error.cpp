// Anthropic error bodies (router/anthropic): the status decides the error type.
#include "router/anthropic/anthropic_error.h"

#include <nlohmann/json.hpp>

namespace v4::router {

std::string anthropic_error_type(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:  // draining: like overload, another replica can take the request
    case 529:
      return "overloaded_error";
    default:
      return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
  }
}

std::string anthropic_error_json(const std::string& type, const std::string& message) {
  nlohmann::ordered_json body;
  body["type"] = "error";
  body["error"]["type"] = type;
  body["error"]["message"] = message;
  // Replace invalid UTF-8 (a message may quote client bytes) instead of throwing.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ErrorReply anthropic_error_reply(const ApiError& error) {
  const int status = error.status == 429 ? 529 : error.status;
  return {status, anthropic_error_json(anthropic_error_type(status), error.message)};
}

}  // namespace v4::router
