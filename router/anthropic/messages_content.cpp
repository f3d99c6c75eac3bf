// Anthropic content blocks -> ChatMessages (messages_request.h has the mapping). Each block type
// is checked where it may appear: tool results and images come from the user, thinking and
// tool calls from the assistant.
#include "router/anthropic/messages_content.h"

#include <string>

namespace v4::router {
namespace {

ChatMessage text_message(std::string role, std::string content) {
  ChatMessage message;
  message.role = std::move(role);
  message.content = std::move(content);
  return message;
}

// A 400 naming the member by its Anthropic-style path; `param` is the top-level member.
ApiError bad(const std::string& path, const std::string& problem, const std::string& param) {
  return invalid_request(path + ": " + problem, param);
}

// Reads a required string member of a block.
std::optional<ApiError> block_string(const RequestJson& block, const char* key,
                                     const std::string& path, const std::string& param,
                                     std::string& out) {
  auto it = block.find(key);
  if (it == block.end() || !it->is_string()) {
    return bad(path + "." + key, "must be a string", param);
  }
  out = it->get<std::string>();
  return std::nullopt;
}

// Block types this model cannot read, with the reason given back.
std::optional<ApiError> refuse_media(const std::string& type, const std::string& path,
                                     const std::string& param) {
  if (type == "image") return bad(path, "images are not supported", param);
  if (type == "document") return bad(path, "documents are not supported", param);
  return std::nullopt;
}

std::optional<ApiError> block_type(const RequestJson& block, const std::string& path,
                                   const std::string& param, std::string& type) {
  if (!block.is_object()) return bad(path, "must be an object", param);
  return block_string(block, "type", path, param, type);
}

// Text blocks joined by `separator` (system prompts and tool results).
std::optional<ApiError> text_of_blocks(const RequestJson& value, const std::string& path,
                                       const std::string& param, const char* separator,
                                       std::string& out) {
  if (value.is_string()) {
    out = value.get<std::string>();
    return std::nullopt;
  }
  if (!value.is_array()) return bad(path, "must be a string or an array of text blocks", param);
  out.clear();
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string where = path + "." + std::to_string(i);
    std::string type, text;
    if (auto error = block_type(value[i], where, param, type)) return error;
    if (auto error = refuse_media(type, where, param)) return error;
    if (type != "text") return bad(where + ".type", "must be 'text', got '" + type + "'", param);
    if (auto error = block_string(value[i], "text", where, param, text)) return error;
    if (i > 0) out += separator;
    out += text;
  }
  return std::nullopt;
}

std::optional<ApiError> read_tool_result(const RequestJson& block, const std::string& path,
                                         ChatMessage& out) {
  out.role = "tool";
  if (auto error = block_string(block, "tool_use_id", path, "messages", out.tool_call_id)) {
    return error;
  }
  if (auto content = block.find("content"); content != block.end() && !content->is_null()) {
    if (auto error = text_of_blocks(*content, path + ".content", "messages", "\n\n", out.content)) {
      return error;
    }
  }
  if (auto is_error = block.find("is_error"); is_error != block.end() && !is_error->is_null()) {
    if (!is_error->is_boolean()) return bad(path + ".is_error", "must be a boolean", "messages");
    // The encoder has no error flag: the model reads the failure in the result's text.
    if (is_error->get<bool>())
      out.content = out.content.empty() ? "Error" : "Error: " + out.content;
  }
  return std::nullopt;
}

// One user turn: text blocks become user messages, tool results tool messages, in order.
std::optional<ApiError> read_user_blocks(const RequestJson& content, const std::string& path,
                                         std::vector<ChatMessage>& out) {
  for (size_t i = 0; i < content.size(); ++i) {
    const RequestJson& block = content[i];
    const std::string where = path + "." + std::to_string(i);
    std::string type;
    if (auto error = block_type(block, where, "messages", type)) return error;
    if (auto error = refuse_media(type, where, "messages")) return error;
    ChatMessage message;
    if (type == "text") {
      message.role = "user";
      if (auto error = block_string(block, "text", where, "messages", message.content)) {
        return error;
      }
    } else if (type == "tool_result") {
      if (auto error = read_tool_result(block, where, message)) return error;
    } else if (type == "tool_use" || type == "thinking" || type == "redacted_thinking") {
      return bad(where + ".type", "'" + type + "' blocks belong in assistant messages", "messages");
    } else {
      return bad(where + ".type", "block type '" + type + "' is not supported", "messages");
    }
    out.push_back(std::move(message));
  }
  return std::nullopt;
}

std::optional<ApiError> read_tool_use(const RequestJson& block, const std::string& path,
                                      ChatMessage& out) {
  ChatToolCall call;
  if (auto error = block_string(block, "id", path, "messages", call.id)) return error;
  if (auto error = block_string(block, "name", path, "messages", call.name)) return error;
  if (!valid_tool_name(call.name)) {
    return bad(path + ".name", "must be 1 to 64 characters of a-z, A-Z, 0-9, '_', '-', '.' and ':'",
               "messages");
  }
  auto input = block.find("input");
  if (input == block.end() || !input->is_object()) {
    return bad(path + ".input", "must be an object", "messages");
  }
  // The encoder renders the arguments' JSON text as the DSML parameters (spec §5.8).
  call.arguments = input->dump();
  out.tool_calls.push_back(std::move(call));
  return std::nullopt;
}

// One assistant turn: text, thinking and tool_use blocks fill one assistant message.
std::optional<ApiError> read_assistant_blocks(const RequestJson& content, const std::string& path,
                                              ChatMessage& out) {
  for (size_t i = 0; i < content.size(); ++i) {
    const RequestJson& block = content[i];
    const std::string where = path + "." + std::to_string(i);
    std::string type, text;
    if (auto error = block_type(block, where, "messages", type)) return error;
    if (auto error = refuse_media(type, where, "messages")) return error;
    if (type == "text") {
      if (auto error = block_string(block, "text", where, "messages", text)) return error;
      out.content += text;
    } else if (type == "thinking") {
      if (auto error = block_string(block, "thinking", where, "messages", text)) return error;
      out.reasoning = out.reasoning.value_or("") + text;
    } else if (type == "redacted_thinking") {
      // Another model's encrypted reasoning: nothing this model can read.
    } else if (type == "tool_use") {
      if (auto error = read_tool_use(block, where, out)) return error;
    } else if (type == "tool_result") {
      return bad(where + ".type", "'tool_result' blocks belong in user messages", "messages");
    } else {
      return bad(where + ".type", "block type '" + type + "' is not supported", "messages");
    }
  }
  return std::nullopt;
}

std::optional<ApiError> read_message(const RequestJson& message, const std::string& path,
                                     std::vector<ChatMessage>& out, bool& last_was_assistant) {
  if (!message.is_object()) return bad(path, "must be an object", "messages");
  std::string role;
  if (auto error = block_string(message, "role", path, "messages", role)) return error;
  if (role != "user" && role != "assistant") {
    return bad(path + ".role", "must be 'user' or 'assistant', got '" + role + "'", "messages");
  }
  auto content = message.find("content");
  if (content == message.end() || !(content->is_string() || content->is_array())) {
    return bad(path + ".content", "must be a string or an array of content blocks", "messages");
  }
  if (content->is_array() && content->empty()) {
    return bad(path + ".content", "must not be empty", "messages");
  }
  const std::string where = path + ".content";
  if (role == "user") {
    last_was_assistant = false;
    if (content->is_string()) {
      out.push_back(text_message("user", content->get<std::string>()));
      return std::nullopt;
    }
    return read_user_blocks(*content, where, out);
  }
  // Anthropic combines consecutive assistant turns into one.
  if (!last_was_assistant) out.push_back(text_message("assistant", ""));
  last_was_assistant = true;
  if (content->is_string()) {
    out.back().content += content->get<std::string>();
    return std::nullopt;
  }
  return read_assistant_blocks(*content, where, out.back());
}

}  // namespace

std::optional<ApiError> read_anthropic_system(const RequestReader& reader, ChatRequest& chat) {
  const RequestJson* system = reader.find("system");
  if (system == nullptr) return std::nullopt;
  ChatMessage message = text_message("system", "");
  // One system message: the encoder attaches the tools section to the first message only.
  if (auto error = text_of_blocks(*system, "system", "system", "\n\n", message.content)) {
    return error;
  }
  chat.messages.insert(chat.messages.begin(), std::move(message));
  return std::nullopt;
}

std::optional<ApiError> read_anthropic_messages(const RequestReader& reader, ChatRequest& chat) {
  const RequestJson* messages = reader.find("messages");
  if (messages == nullptr) return invalid_request("messages: field required", "messages");
  if (!messages->is_array()) return type_error("messages", "an array", *messages);
  if (messages->empty()) return invalid_request("messages: must not be empty", "messages");
  bool last_was_assistant = false;
  for (size_t i = 0; i < messages->size(); ++i) {
    if (auto error = read_message((*messages)[i], "messages." + std::to_string(i), chat.messages,
                                  last_was_assistant)) {
      return error;
    }
  }
  if (last_was_assistant) {
    return invalid_request(
        "messages: a final assistant message (prefill) is not supported; the last message must "
        "be from the user",
        "messages");
  }
  return std::nullopt;
}

}  // namespace v4::router
