// OpenAI error bodies (router front, docs/design.md): the status decides the error type.
#include "router/openai/openai_error.h"

#include <nlohmann/json.hpp>
#include <utility>

namespace v4::router {
namespace {

ApiError make_error(int status, std::string type, std::string message, std::string param = "",
                    std::string code = "") {
  ApiError error;
  error.status = status;
  error.type = std::move(type);
  error.message = std::move(message);
  error.param = std::move(param);
  error.code = std::move(code);
  return error;
}

nlohmann::ordered_json string_or_null(const std::string& text) {
  return text.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(text);
}

}  // namespace

ApiError invalid_request(std::string message, std::string param, std::string code) {
  return make_error(400, "invalid_request_error", std::move(message), std::move(param),
                    std::move(code));
}

ApiError not_found(std::string message, std::string code) {
  return make_error(404, "invalid_request_error", std::move(message), "", std::move(code));
}

ApiError unauthorized(std::string message) {
  return make_error(401, "authentication_error", std::move(message), "", "invalid_api_key");
}

ApiError too_large(std::string message) {
  return make_error(413, "invalid_request_error", std::move(message));
}

ApiError overloaded(std::string message) {
  return make_error(429, "rate_limit_error", std::move(message));
}

ApiError server_error(std::string message, int status) {
  return make_error(status, "server_error", std::move(message));
}

std::string api_error_json(const ApiError& error) {
  nlohmann::ordered_json body;
  body["error"]["message"] = error.message;
  body["error"]["type"] = error.type;
  body["error"]["param"] = string_or_null(error.param);
  body["error"]["code"] = string_or_null(error.code);
  // Replace invalid UTF-8 (a message may quote client bytes) instead of throwing.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace v4::router
