// Parsing and validation of Anthropic Messages API bodies (POST /v1/messages and
// /v1/messages/count_tokens) into the OpenAiRequest every API maps onto, so that a Messages
// request renders exactly the DSML prompt of the equivalent chat completion. Every member is
// type- and range-checked; the first problem is a 400 whose message names the member by its
// path ("messages.1.content.0.type ..."). Unknown members are skipped, as Anthropic does for
// members a model does not use.
//
// The mapping (docs/design.md, router/anthropic):
//   system (string or text blocks)    -> one system message, blocks joined by a blank line
//   user text blocks                  -> user messages (the encoder joins them by a blank line)
//   user tool_result blocks           -> tool messages (<tool_result> in the user turn);
//                                        is_error prefixes the text with "Error: "
//   assistant text / thinking / tool_use -> content / reasoning_content / tool_calls of one
//                                        assistant message (consecutive assistant turns merge)
//   tools[].{name, description, input_schema} -> function {name, description, parameters}
//   tool_choice auto / any / tool / none -> auto / required / named / none;
//                                        disable_parallel_tool_use -> parallel_tool_calls false
//   thinking enabled / adaptive       -> V4 thinking mode; output_config.effort "max" selects
//                                        Think-Max; budget_tokens is checked (>= 1024, below
//                                        max_tokens) but V4 has no budget: max_tokens bounds
//                                        the whole output, reasoning included
//   thinking disabled / between_tools / absent -> V4 non-thinking mode; thinking.display is
//                                        checked, and thinking is always returned in full
//   stop_sequences, max_tokens, temperature, top_p, top_k -> the same sampling settings
// Images and documents are refused ("images are not supported": the model reads text only), as
// are a final assistant message (prefill), server tools and output_config.format. As on chat
// completions, vLLM's guided_choice (an extension) makes the output one of the given texts.
#pragma once

#include <string_view>

#include "router/openai/openai_error.h"
#include "router/openai/openai_request.h"

namespace v4::router {

enum class MessagesRoute {
  kCreate,       // POST /v1/messages: max_tokens is required
  kCountTokens,  // POST /v1/messages/count_tokens: sampling members are not needed
};

// Parses a body; returns std::nullopt and fills `out` (endpoint kChat, n 1), or the error.
std::optional<ApiError> parse_messages_request(MessagesRoute route, std::string_view body,
                                               OpenAiRequest& out);

}  // namespace v4::router
