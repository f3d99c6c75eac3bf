// One HTTP API over the shared generation machinery: OpenAI's (openai_front.h), Anthropic's
// Messages API (router/anthropic) and OpenAI's Responses API (router/responses). OpenAiService
// keeps what every API shares — authentication, draining, the queue limit, the request threads, job
// tracking, metrics — and asks the front for what differs: which POST routes it serves, how a body
// reads (every API maps its requests onto OpenAiRequest, so prompts render and sample the same
// way), how errors look, and how a response is written.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "router/openai/completion_job.h"
#include "router/openai/openai_error.h"
#include "router/openai/openai_request.h"
#include "router/openai/prompt_builder.h"

namespace v4::router {

enum class RouteKind {
  kGenerate,      // runs the request on the engine (a CompletionJob)
  kPromptTokens,  // answers from the prepared prompt alone (token counting)
  kDirect,        // answers from the body alone (direct_reply), on a request thread
};

struct ErrorReply {
  int status = 500;
  std::string body;  // JSON
};

// The answer to a request a front serves itself, at once and without the engine (reading or
// deleting a stored response).
struct DirectReply {
  int status = 200;
  std::string body;     // JSON
  std::string handler;  // the metrics label of the route ("/v1/responses/{id}")
};

class ApiFront {
 public:
  virtual ~ApiFront() = default;

  // The kind of the POST route at `path`, or nothing when the front does not serve it.
  virtual std::optional<RouteKind> route(std::string_view path) const = 0;
  // Whether `path` lies in this API's namespace, so that the service's own errors for it
  // (authentication, unknown routes or methods) take this API's shape.
  virtual bool owns(std::string_view path) const = 0;
  // An error in this API's shape; the status may differ from error.status where the API has
  // its own word for a condition.
  virtual ErrorReply error_reply(const ApiError& error) const = 0;
  // Parses the body posted to a route into the common request form.
  virtual std::optional<ApiError> parse(std::string_view path, std::string_view body,
                                        size_t vocab_size, OpenAiRequest& out) const = 0;
  // A request other than the POST routes that the front answers itself (GET or DELETE of a
  // stored response), or nothing when it serves no `method` at `path`. Runs on an HTTP thread:
  // it must be quick.
  virtual std::optional<DirectReply> answer(std::string_view method, std::string_view path) const {
    (void)method, (void)path;
    return std::nullopt;
  }
  // kPromptTokens: the JSON answer for the prepared request; `max_context` is the workers'.
  virtual std::string prompt_reply(const PreparedRequest& prepared, uint32_t max_context) const {
    (void)prepared, (void)max_context;
    return "{}";
  }
  // kDirect: the JSON answer (200) for `body`, or the error to return.
  virtual std::optional<ApiError> direct_reply(std::string_view path, std::string_view body,
                                               std::string& reply) const {
    (void)path, (void)body, (void)reply;
    return server_error("this route has no direct answer");
  }
  // kGenerate: how the job for this request writes its response.
  virtual JobSetup job_setup(std::string_view path, const OpenAiRequest& request,
                             const PreparedRequest& prepared, const JobEnvironment& env) const = 0;
};

}  // namespace v4::router
