// vLLM's POST /tokenize and /detokenize as an ApiFront, so that clients can count and inspect
// the exact tokens the server feeds the model (agents budget their context with them).
//
// /tokenize takes a chat body ("messages", with tools, reasoning_effort, ... exactly as
// /v1/chat/completions reads them) or a completions body ("prompt": one string or one list of
// token ids) and answers {"count", "max_model_len", "tokens"}: the prompt rendered and tokenized
// by the same code as generation (spec §5.3, §5.8), so the ids are those a generation request
// would process. /detokenize takes {"tokens": [ids]} and answers {"prompt": text}, ill-formed
// UTF-8 replaced as in streamed output. "model" may be left out; when given it must be the
// served model. Neither route touches the engine.
#pragma once

#include <string>

#include "model/text/tokenizer.h"
#include "router/openai/api_front.h"

namespace v4::router {

class TokenizeFront : public ApiFront {
 public:
  TokenizeFront(std::string model_name, const Tokenizer& tokenizer);

  std::optional<RouteKind> route(std::string_view path) const override;
  bool owns(std::string_view path) const override;
  ErrorReply error_reply(const ApiError& error) const override;
  std::optional<ApiError> parse(std::string_view path, std::string_view body, size_t vocab_size,
                                OpenAiRequest& out) const override;
  std::string prompt_reply(const PreparedRequest& prepared, uint32_t max_context) const override;
  std::optional<ApiError> direct_reply(std::string_view path, std::string_view body,
                                       std::string& reply) const override;
  JobSetup job_setup(std::string_view path, const OpenAiRequest& request,
                     const PreparedRequest& prepared, const JobEnvironment& env) const override;

 private:
  std::string model_name_;
  const Tokenizer& tokenizer_;
};

}  // namespace v4::router
