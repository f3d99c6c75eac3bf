// A chat request as the DeepSeek-V4 renderer needs it: OpenAI-style messages, function tools,
// thinking mode and reasoning effort, plus the exact DSML of earlier tool calls for replay.
// Spec §5.8.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace v4 {

struct ChatToolCall {
  std::string id;
  std::string name;
  // The "arguments" member as sent: normally a JSON text; when a client sent a JSON value
  // instead of a string, `arguments` holds that value's JSON and `arguments_is_text` is false.
  std::string arguments;
  bool arguments_is_text = true;
};

struct ChatMessage {
  // system, developer, user, assistant, tool or latest_reminder.
  std::string role;
  std::string content;                   // null content reads as ""
  std::optional<std::string> reasoning;  // assistant "reasoning_content" (alias "reasoning")
  std::vector<ChatToolCall> tool_calls;  // assistant
  std::string tool_call_id;              // tool
  // Quick-instruction task (action, query, authority, domain, title, read_url).
  std::optional<std::string> task;
};

struct ChatRequest {
  std::vector<ChatMessage> messages;
  // Each tool's "function" object as JSON text; key order is kept (it is rendered verbatim).
  std::vector<std::string> tools;
  bool thinking = false;
  // "max" adds the maximum-effort instruction in thinking mode; "high" and absent do nothing;
  // other OpenAI values ("low", "medium") are accepted and ignored, as SGLang does.
  std::optional<std::string> reasoning_effort;
  // Tool-call id -> the exact `<｜DSML｜invoke ...>...</｜DSML｜invoke>` bytes the model produced
  // for it, so a follow-up turn renders that call byte-identically (see DsmlParser).
  std::map<std::string, std::string> tool_call_dsml;
};

// Parses an OpenAI-style chat completion request body. Recognised members: messages, tools,
// thinking (bool or {"type": "enabled"|"disabled"}), chat_template_kwargs.thinking,
// reasoning_effort, task (attached to the last user/developer message) and dsml_replay
// (object: tool-call id -> DSML text). Errors name the member at fault.
Result<ChatRequest> parse_chat_request(std::string_view json_text);
// The same for a body already parsed (the server parses each body once, with limits).
Result<ChatRequest> parse_chat_request_json(const nlohmann::ordered_json& request);

}  // namespace v4
