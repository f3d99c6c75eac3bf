// OpenAI's error body: {"error": {"message", "type", "param", "code"}} with the HTTP status it
// travels with. Types follow OpenAI's: invalid_request_error (400/404/413), authentication_error
// (401), rate_limit_error (429), server_error (500/503).
#pragma once

#include <string>

namespace v4::router {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" becomes null
  std::string code;   // "" becomes null
};

ApiError invalid_request(std::string message, std::string param = "", std::string code = "");
ApiError not_found(std::string message, std::string code = "");
ApiError unauthorized(std::string message);
ApiError too_large(std::string message);
ApiError overloaded(std::string message);
ApiError server_error(std::string message, int status = 500);

// The JSON text of the error body.
std::string api_error_json(const ApiError& error);

}  // namespace v4::router
