// Anthropic's Messages API as an ApiFront of OpenAiService: POST /v1/messages (a generation,
// answered by MessagesWriter) and POST /v1/messages/count_tokens ({"input_tokens": N}, the
// prompt tokens the same request would use), with Anthropic error bodies for every path under
// /v1/messages.
#pragma once

#include "router/openai/api_front.h"

namespace v4::router {

class MessagesFront : public ApiFront {
 public:
  std::optional<RouteKind> route(std::string_view path) const override;
  bool owns(std::string_view path) const override;
  ErrorReply error_reply(const ApiError& error) const override;
  std::optional<ApiError> parse(std::string_view path, std::string_view body, size_t vocab_size,
                                OpenAiRequest& out) const override;
  std::string prompt_reply(const PreparedRequest& prepared, uint32_t max_context) const override;
  JobSetup job_setup(std::string_view path, const OpenAiRequest& request,
                     const PreparedRequest& prepared, const JobEnvironment& env) const override;
};

}  // namespace v4::router
