// Parsing and validation of OpenAI Responses API bodies (POST /v1/responses) into the
// OpenAiRequest every API maps onto, so that a Responses request renders exactly the DSML
// prompt of the equivalent chat completion. Every member is type- and range-checked; the first
// problem is a 400 naming the member ("Invalid 'input[1].content[0].type': ..."). Unknown
// members are skipped.
//
// The mapping (docs/design.md, router/responses):
//   instructions                       -> a system message before everything else (not
//                                         inherited through previous_response_id, as OpenAI does)
//   previous_response_id               -> the stored conversation of that response (its input
//                                         and output) before this input
//   input string                       -> one user message
//   message items (user / system / developer) -> messages of that role, text parts concatenated
//   reasoning, assistant message and function_call items that follow one another
//                                      -> one assistant message: reasoning_content, content and
//                                         tool_calls (call_id as the call's id)
//   function_call_output               -> a tool message answering call_id
//   tools [{type: function, name, description, parameters}] -> chat functions; `strict` is
//                                         accepted and not enforced
//   tool_choice none / auto / required / {type: function, name} -> the same on chat
//   reasoning.effort none / minimal    -> V4's non-thinking mode (also when `reasoning` is absent)
//   reasoning.effort low / medium / high (or `reasoning` without effort) -> thinking mode
//   reasoning.effort xhigh / max       -> Think-Max
//   max_output_tokens, temperature, top_p -> max_tokens, temperature, top_p (reasoning counts
//                                         against max_output_tokens, as on OpenAI)
//   seed, top_k, min_p, repetition_penalty, guided_choice -> as on chat (v4serve extensions)
// Function calls the model made in a stored response render with the exact DSML it wrote
// (response_store.h), whether they come back through previous_response_id or as items.
// Refused with a 400: images, files and audio, hosted tools, item references, structured
// outputs (text.format other than text), logprobs, background mode, conversations and prompt
// templates.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "model/chat/chat_request.h"
#include "router/openai/openai_error.h"
#include "router/openai/openai_request.h"
#include "router/openai/request_json.h"

namespace v4::router {

class ResponseStore;

// What the Responses front keeps from the body for the response (OpenAiRequest::front_state).
struct ResponsesState {
  // The request members a response object repeats (instructions, tools, tool_choice,
  // reasoning, metadata, ...), in the response object's order.
  RequestJson echo = RequestJson::object();
  bool store = true;
  // The conversation after the instructions: the previous response's, then this input.
  std::vector<ChatMessage> conversation;
};

// Parses a body; `store` (may be null: no stored responses) resolves previous_response_id and
// the DSML of replayed calls. Returns std::nullopt and fills `out` (endpoint kChat, n 1) and
// `state`, or the error: a 400, or a 404 for a previous response that is not stored.
std::optional<ApiError> parse_responses_request(std::string_view body, ResponseStore* store,
                                                OpenAiRequest& out, ResponsesState& state);

}  // namespace v4::router
