// Anthropic's error body, {"type": "error", "error": {"type": ..., "message": ...}}, with the
// status it travels with. The type follows the status as Anthropic's API reference lists them:
// 400 invalid_request_error, 401 authentication_error, 403 permission_error, 404
// not_found_error, 413 request_too_large, 429 rate_limit_error, 500 api_error, 529
// overloaded_error. The service's queue limit is overload, not a client's rate: its 429
// becomes 529 overloaded_error (the SDKs retry both).
#pragma once

#include <string>

#include "router/openai/api_front.h"
#include "router/openai/openai_error.h"

namespace v4::router {

// The Anthropic error type for an HTTP status.
std::string anthropic_error_type(int status);

// {"type":"error","error":{"type":TYPE,"message":MESSAGE}}.
std::string anthropic_error_json(const std::string& type, const std::string& message);

// An ApiError (parsing, the service's checks, the job) as Anthropic answers it.
ErrorReply anthropic_error_reply(const ApiError& error);

}  // namespace v4::router
