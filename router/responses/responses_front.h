// OpenAI's Responses API as an ApiFront of OpenAiService: POST /v1/responses (a generation,
// answered by ResponsesWriter), GET /v1/responses/{id} (a stored response) and DELETE
// /v1/responses/{id}, with OpenAI error bodies. It owns the ResponseStore that
// previous_response_id reads and finished responses are kept in.
#pragma once

#include <memory>

#include "router/openai/api_front.h"
#include "router/responses/response_store.h"

namespace v4::router {

class ResponsesFront : public ApiFront {
 public:
  // `store`: never null (a store of 0 bytes keeps nothing).
  explicit ResponsesFront(std::shared_ptr<ResponseStore> store);

  std::optional<RouteKind> route(std::string_view path) const override;
  bool owns(std::string_view path) const override;
  ErrorReply error_reply(const ApiError& error) const override;
  std::optional<ApiError> parse(std::string_view path, std::string_view body, size_t vocab_size,
                                OpenAiRequest& out) const override;
  std::optional<DirectReply> answer(std::string_view method, std::string_view path) const override;
  JobSetup job_setup(std::string_view path, const OpenAiRequest& request,
                     const PreparedRequest& prepared, const JobEnvironment& env) const override;

 private:
  std::shared_ptr<ResponseStore> store_;
};

}  // namespace v4::router
