// Routes, ids and writers of the Messages API.
#include "router/anthropic/messages_front.h"

#include "core/random_id.h"
#include "router/anthropic/anthropic_error.h"
#include "router/anthropic/messages_request.h"
#include "router/anthropic/messages_writer.h"

namespace v4::router {
namespace {

constexpr std::string_view kMessagesPath = "/v1/messages";
constexpr std::string_view kCountTokensPath = "/v1/messages/count_tokens";

// Anthropic-style ids ("msg_" / "toolu_" + base62).
std::string anthropic_id(const char* prefix, size_t length) {
  return random_id(prefix, length, kBase62Digits);
}

}  // namespace

std::optional<RouteKind> MessagesFront::route(std::string_view path) const {
  if (path == kMessagesPath) return RouteKind::kGenerate;
  if (path == kCountTokensPath) return RouteKind::kPromptTokens;
  return std::nullopt;
}

bool MessagesFront::owns(std::string_view path) const {
  return path == kMessagesPath ||
         (path.starts_with(kMessagesPath) && path[kMessagesPath.size()] == '/');
}

ErrorReply MessagesFront::error_reply(const ApiError& error) const {
  return anthropic_error_reply(error);
}

std::optional<ApiError> MessagesFront::parse(std::string_view path, std::string_view body,
                                             size_t vocab_size, OpenAiRequest& out) const {
  (void)vocab_size;  // the Messages API takes no token ids
  const MessagesRoute route =
      path == kCountTokensPath ? MessagesRoute::kCountTokens : MessagesRoute::kCreate;
  return parse_messages_request(route, body, out);
}

std::string MessagesFront::prompt_reply(const PreparedRequest& prepared,
                                        uint32_t max_context) const {
  (void)max_context;
  return "{\"input_tokens\":" + std::to_string(prepared.prompts.front().ids.size()) + "}";
}

JobSetup MessagesFront::job_setup(std::string_view path, const OpenAiRequest& request,
                                  const PreparedRequest& prepared,
                                  const JobEnvironment& env) const {
  MessageMeta meta{anthropic_id("msg_", 24), env.model_name,
                   static_cast<uint32_t>(prepared.prompts.front().ids.size())};
  JobSetup setup;
  setup.writer = std::make_unique<MessagesWriter>(std::move(meta), request.stream);
  setup.handler = std::string(path);
  // Ids are unique across a conversation, as clients key tool results by them.
  setup.tool_call_id_prefix = anthropic_id("toolu_", 20) + "_";
  return setup;
}

}  // namespace v4::router
