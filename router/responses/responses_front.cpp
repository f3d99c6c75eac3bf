// Routes, stored-response reads and writers of the Responses API.
#include "router/responses/responses_front.h"

#include <ctime>
#include <nlohmann/json.hpp>

#include "core/random_id.h"
#include "router/responses/responses_request.h"
#include "router/responses/responses_writer.h"

namespace v4::router {
namespace {

constexpr std::string_view kResponsesPath = "/v1/responses";
constexpr const char* kOneResponse = "/v1/responses/{id}";

// Tool-call ids ("call_" + 24 hex digits + "_"; the job appends the call's index): unique
// across conversations, as stored DSML is found by them.
std::string call_id_prefix() { return random_id("call_", 24, kHexDigits) + "_"; }

DirectReply error_answer(const ApiError& error) {
  return {error.status, api_error_json(error), kOneResponse};
}

}  // namespace

ResponsesFront::ResponsesFront(std::shared_ptr<ResponseStore> store) : store_(std::move(store)) {}

std::optional<RouteKind> ResponsesFront::route(std::string_view path) const {
  if (path == kResponsesPath) return RouteKind::kGenerate;
  return std::nullopt;
}

bool ResponsesFront::owns(std::string_view path) const {
  return path == kResponsesPath ||
         (path.starts_with(kResponsesPath) && path[kResponsesPath.size()] == '/');
}

ErrorReply ResponsesFront::error_reply(const ApiError& error) const {
  return {error.status, api_error_json(error)};
}

std::optional<ApiError> ResponsesFront::parse(std::string_view path, std::string_view body,
                                              size_t vocab_size, OpenAiRequest& out) const {
  (void)path, (void)vocab_size;  // one route; the Responses API takes no token ids
  auto state = std::make_shared<ResponsesState>();
  if (std::optional<ApiError> error = parse_responses_request(body, store_.get(), out, *state)) {
    return error;
  }
  out.front_state = std::move(state);
  return std::nullopt;
}

std::optional<DirectReply> ResponsesFront::answer(std::string_view method,
                                                  std::string_view path) const {
  if (!path.starts_with(kResponsesPath) || path.size() <= kResponsesPath.size() + 1) {
    return std::nullopt;
  }
  const std::string id(path.substr(kResponsesPath.size() + 1));
  if (path[kResponsesPath.size()] != '/' || id.find('/') != std::string::npos) return std::nullopt;
  if (method != "GET" && method != "DELETE") {
    ApiError error = invalid_request("method " + std::string(method) + " is not allowed on " +
                                     std::string(path));
    error.status = 405;
    return error_answer(error);
  }
  const std::string missing = "Response with id '" + id + "' not found.";
  if (method == "DELETE") {
    if (!store_->erase(id)) return error_answer(not_found(missing));
    nlohmann::ordered_json body = {{"id", id}, {"object", "response"}, {"deleted", true}};
    return DirectReply{200, body.dump(), kOneResponse};
  }
  const StoreLookup found = store_->find(id);
  if (found.state != StoredState::kFound) {
    return error_answer(
        not_found(found.state == StoredState::kGone
                      ? "Response with id '" + id + "' is no longer stored (evicted or deleted)."
                      : missing));
  }
  return DirectReply{200, found.response->response_json, kOneResponse};
}

JobSetup ResponsesFront::job_setup(std::string_view path, const OpenAiRequest& request,
                                   const PreparedRequest& prepared,
                                   const JobEnvironment& env) const {
  (void)env;
  const auto state = std::static_pointer_cast<const ResponsesState>(request.front_state);
  ResponsesMeta meta;
  (void)prepared;
  // A store without room keeps nothing: ids then never count as gone.
  meta.store = state->store && store_->max_bytes() > 0;
  meta.id = store_->new_id(meta.store);
  meta.created_at = static_cast<int64_t>(std::time(nullptr));
  meta.echo = state->echo;
  if (meta.store) {
    meta.conversation = state->conversation;
    meta.tool_call_dsml = request.chat.tool_call_dsml;
  }
  JobSetup setup;
  setup.writer = std::make_unique<ResponsesWriter>(std::move(meta), request.stream, store_);
  setup.handler = std::string(path);
  setup.tool_call_id_prefix = call_id_prefix();
  return setup;
}

}  // namespace v4::router
