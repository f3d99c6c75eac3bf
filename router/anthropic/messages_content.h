// The conversation members of a Messages API body — `system` and `messages` with their content
// blocks — read into the chat messages the DeepSeek-V4 encoder renders (messages_request.h
// lists the mapping). Errors name the member by its path ("messages.2.content.0.tool_use_id").
#pragma once

#include <optional>

#include "model/chat/chat_request.h"
#include "router/openai/openai_error.h"
#include "router/openai/openai_request_reader.h"

namespace v4::router {

std::optional<ApiError> read_anthropic_system(const RequestReader& reader, ChatRequest& chat);
std::optional<ApiError> read_anthropic_messages(const RequestReader& reader, ChatRequest& chat);

}  // namespace v4::router
