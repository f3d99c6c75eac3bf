// OpenAI routes, errors and response writers for OpenAiService.
#include "router/openai/openai_front.h"

#include <ctime>

#include "core/random_id.h"
#include "router/openai/openai_writer.h"

namespace v4::router {
namespace {

constexpr std::string_view kChatPath = "/v1/chat/completions";
constexpr std::string_view kCompletionsPath = "/v1/completions";

// OpenAI-style ids ("chatcmpl-" + 24 hex digits); not secret, only unique.
std::string response_id(Endpoint endpoint) {
  return random_id(endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-", 24, kHexDigits);
}

// Tool-call ids: "call_" + 24 base62 digits, then the call's index. Unique across requests, as
// the replay store and clients key calls by id; not secret.
std::string tool_call_id_prefix() { return random_id("call_", 24, kBase62Digits); }

}  // namespace

std::optional<RouteKind> OpenAiFront::route(std::string_view path) const {
  if (path == kChatPath || path == kCompletionsPath) return RouteKind::kGenerate;
  return std::nullopt;
}

bool OpenAiFront::owns(std::string_view path) const {
  (void)path;
  return true;
}

ErrorReply OpenAiFront::error_reply(const ApiError& error) const {
  return {error.status, api_error_json(error)};
}

std::optional<ApiError> OpenAiFront::parse(std::string_view path, std::string_view body,
                                           size_t vocab_size, OpenAiRequest& out) const {
  const Endpoint endpoint = path == kChatPath ? Endpoint::kChat : Endpoint::kCompletions;
  return parse_openai_request(endpoint, body, vocab_size, out);
}

JobSetup OpenAiFront::job_setup(std::string_view path, const OpenAiRequest& request,
                                const PreparedRequest& prepared, const JobEnvironment& env) const {
  ResponseMeta meta{response_id(request.endpoint),
                    static_cast<int64_t>(std::time(nullptr)),
                    env.model_name,
                    request.endpoint,
                    request.endpoint == Endpoint::kChat ? request.logprobs
                                                        : request.completion_logprobs.has_value(),
                    env.system_fingerprint};
  const size_t choices = prepared.prompts.size() * request.n;
  JobSetup setup;
  setup.writer = std::make_unique<OpenAiWriter>(std::move(meta), request.stream,
                                                request.include_usage, choices);
  setup.handler = std::string(path);
  setup.tool_call_id_prefix = tool_call_id_prefix();
  return setup;
}

}  // namespace v4::router
