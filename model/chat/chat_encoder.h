// The DeepSeek-V4 prompt renderer: turns a ChatRequest into the exact prompt text of DeepSeek's
// official encoder (`encoding_dsv4.py`, `encode_messages`), as served by SGLang: an empty system
// message is put first when the conversation has none, and request tools attach to the first
// message. Spec §5.8.
#pragma once

#include <string>

#include "core/status.h"
#include "model/chat/chat_request.h"

namespace v4 {

// Fixed strings of the format (spec §5.3 special tokens, §5.8 layout).
inline constexpr const char* kBosText = "<｜begin▁of▁sentence｜>";
inline constexpr const char* kEosText = "<｜end▁of▁sentence｜>";
inline constexpr const char* kUserText = "<｜User｜>";
inline constexpr const char* kAssistantText = "<｜Assistant｜>";
inline constexpr const char* kThinkStartText = "<think>";
inline constexpr const char* kThinkEndText = "</think>";
inline constexpr const char* kDsmlText = "｜DSML｜";
inline constexpr const char* kLatestReminderText = "<｜latest_reminder｜>";

// The prompt text, ending with the open assistant prefix when the last message asks for a reply.
// Fails on what the official encoder rejects (unknown task, empty developer message, tool-call
// arguments that are JSON but not an object).
Result<std::string> render_chat_prompt(const ChatRequest& request);

// The DSML text of one tool call as the official encoder writes it:
// `<｜DSML｜invoke name="NAME">\n<parameters, one per line>\n</｜DSML｜invoke>`.
Result<std::string> render_dsml_invoke(const ChatToolCall& call);

}  // namespace v4
