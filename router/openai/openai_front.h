// OpenAI's API as an ApiFront: POST /v1/chat/completions and /v1/completions, OpenAI error
// bodies (openai_error.h) and OpenAiWriter responses. It owns every path no other front claims.
#pragma once

#include "router/openai/api_front.h"

namespace v4::router {

class OpenAiFront : public ApiFront {
 public:
  std::optional<RouteKind> route(std::string_view path) const override;
  bool owns(std::string_view path) const override;
  ErrorReply error_reply(const ApiError& error) const override;
  std::optional<ApiError> parse(std::string_view path, std::string_view body, size_t vocab_size,
                                OpenAiRequest& out) const override;
  JobSetup job_setup(std::string_view path, const OpenAiRequest& request,
                     const PreparedRequest& prepared, const JobEnvironment& env) const override;
};

}  // namespace v4::router
