// The `input` of a Responses API body — a string, or a list of items — read into the chat
// messages the DeepSeek-V4 encoder renders (responses_request.h lists the mapping). Errors
// name the member by its path, as OpenAI does ("input[2].content[0].type").
#pragma once

#include <optional>
#include <vector>

#include "model/chat/chat_request.h"
#include "router/openai/openai_error.h"
#include "router/openai/request_json.h"

namespace v4::router {

// Appends the messages of `input` to `out`.
std::optional<ApiError> read_responses_input(const RequestJson& input,
                                             std::vector<ChatMessage>& out);

}  // namespace v4::router
