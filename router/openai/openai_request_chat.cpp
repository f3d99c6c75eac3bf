// Chat-only members of an OpenAI request: messages (model/chat/chat_request.h reads their content),
// thinking switches, tools and tool_choice, and chat's boolean logprobs.
#include <algorithm>
#include <set>

#include "router/openai/openai_request_reader.h"

namespace v4::router {
namespace {

std::optional<ApiError> read_tools(const RequestReader& reader, std::set<std::string>& names,
                                   OpenAiRequest& out) {
  const RequestJson* tools = reader.find("tools");
  if (tools == nullptr) return std::nullopt;
  if (!tools->is_array()) return type_error("tools", "an array", *tools);
  for (size_t i = 0; i < tools->size(); ++i) {
    const RequestJson& tool = (*tools)[i];
    const std::string where = "tools[" + std::to_string(i) + "]";
    if (!tool.is_object()) {
      return invalid_request("'" + where + "' must be an object, got " + json_type_name(tool),
                             "tools");
    }
    auto type = tool.find("type");
    if (type == tool.end() || *type != "function") {
      return invalid_request("'" + where + ".type' must be 'function'", "tools");
    }
    auto function = tool.find("function");
    if (function == tool.end() || !function->is_object()) {
      return invalid_request("'" + where + ".function' must be an object", "tools");
    }
    auto name = function->find("name");
    if (name == function->end() || !name->is_string() ||
        !valid_tool_name(name->get<std::string>())) {
      return invalid_request("'" + where +
                                 ".function.name' must be 1 to 64 characters of a-z, A-Z, 0-9, "
                                 "'_', '-', '.' and ':'",
                             "tools");
    }
    auto parameters = function->find("parameters");
    if (parameters != function->end() && !parameters->is_null() && !parameters->is_object()) {
      return invalid_request("'" + where + ".function.parameters' must be an object", "tools");
    }
    auto strict = function->find("strict");
    if (strict != function->end() && !strict->is_null() && !strict->is_boolean()) {
      return invalid_request("'" + where + ".function.strict' must be a boolean", "tools");
    }
    if (strict != function->end() && strict->is_boolean() && strict->get<bool>()) {
      const RequestJson none;
      if (auto error = check_strict_tool(name->get<std::string>(),
                                         parameters == function->end() ? none : *parameters,
                                         where + ".function")) {
        return error;
      }
      ++out.strict_tools;
    }
    names.insert(name->get<std::string>());
  }
  return std::nullopt;
}

std::optional<ApiError> read_tool_choice(const RequestReader& reader,
                                         const std::set<std::string>& names, OpenAiRequest& out) {
  out.tool_choice = names.empty() ? ToolChoice::kNone : ToolChoice::kAuto;
  const RequestJson* choice = reader.find("tool_choice");
  if (choice == nullptr) return std::nullopt;
  if (choice->is_string()) {
    const std::string value = choice->get<std::string>();
    if (value == "none") {
      out.tool_choice = ToolChoice::kNone;
    } else if (value == "auto") {
      out.tool_choice = ToolChoice::kAuto;
    } else if (value == "required") {
      out.tool_choice = ToolChoice::kRequired;
    } else {
      return invalid_request(
          "'tool_choice' must be 'none', 'auto', 'required' or a named function, got '" + value +
              "'",
          "tool_choice");
    }
  } else if (choice->is_object()) {
    auto function = choice->find("function");
    if (choice->value("type", "") != "function" || function == choice->end() ||
        !function->is_object() || !(*function)["name"].is_string()) {
      return invalid_request(
          "'tool_choice' object must be {\"type\": \"function\", \"function\": {\"name\": ...}}",
          "tool_choice");
    }
    out.tool_choice = ToolChoice::kNamed;
    out.tool_choice_name = (*function)["name"].get<std::string>();
    if (!names.empty() && names.count(out.tool_choice_name) == 0) {
      return invalid_request(
          "'tool_choice' names function '" + out.tool_choice_name + "', which is not in 'tools'",
          "tool_choice");
    }
  } else {
    return type_error("tool_choice", "a string or an object", *choice);
  }
  if (names.empty() && out.tool_choice != ToolChoice::kNone) {
    return invalid_request("'tool_choice' other than 'none' needs 'tools'", "tool_choice");
  }
  return std::nullopt;
}

// Thinking may also come as chat_template_kwargs.enable_thinking or enable_thinking (the
// switches other servers' templates use); "thinking" and chat_template_kwargs.thinking win.
std::optional<ApiError> read_thinking_switches(const RequestReader& reader,
                                               std::optional<bool>& fallback, bool& explicit_set) {
  explicit_set = reader.find("thinking") != nullptr;
  if (const RequestJson* kwargs = reader.find("chat_template_kwargs")) {
    if (!kwargs->is_object()) return type_error("chat_template_kwargs", "an object", *kwargs);
    for (const char* key : {"thinking", "enable_thinking"}) {
      auto it = kwargs->find(key);
      if (it == kwargs->end() || it->is_null()) continue;
      if (!it->is_boolean()) {
        return type_error(std::string("chat_template_kwargs.") + key, "a boolean", *it);
      }
      if (std::string(key) == "thinking") {
        explicit_set = true;
      } else {
        fallback = it->get<bool>();
      }
    }
  }
  if (!fallback) {
    bool enable = false;
    if (reader.find("enable_thinking") != nullptr) {
      if (auto error = reader.boolean("enable_thinking", enable)) return error;
      fallback = enable;
    }
  }
  return std::nullopt;
}

// model/chat/chat_request.h names the member first ("request.messages[0].role must be ...").
ApiError chat_error(const std::string& message) {
  std::string text = message.starts_with("request.") ? message.substr(8) : message;
  const size_t end = text.find_first_of(".[ ");
  std::string param = text.substr(0, end);
  if (param != "thinking" && param != "reasoning_effort" && param != "task" &&
      param != "dsml_replay" && param != "tools") {
    param = "messages";
  }
  return invalid_request(std::move(text), std::move(param));
}

std::optional<ApiError> read_messages(const RequestReader& reader, OpenAiRequest& out) {
  const RequestJson* messages = reader.find("messages");
  if (messages == nullptr) return invalid_request("'messages' is a required property", "messages");
  if (!messages->is_array()) return type_error("messages", "an array", *messages);
  if (messages->empty()) return invalid_request("'messages' must not be empty", "messages");
  std::optional<bool> fallback;
  bool explicit_thinking = false;
  if (auto error = read_thinking_switches(reader, fallback, explicit_thinking)) return error;
  Result<ChatRequest> chat = parse_chat_request_json(reader.body());
  if (!chat) return chat_error(chat.message());
  out.chat = std::move(*chat);
  if (!explicit_thinking && fallback) out.chat.thinking = *fallback;
  return std::nullopt;
}

}  // namespace

// OpenAI's function-name rule, plus '.' and ':' that MCP-style names use. The name is written
// into DSML tags (`invoke name="NAME"`), so quotes and angle brackets must never get through.
bool valid_tool_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':';
  });
}

std::optional<ApiError> read_chat_members(const RequestReader& reader, OpenAiRequest& out) {
  std::set<std::string> names;
  if (auto error = read_tools(reader, names, out)) return error;
  if (auto error = read_messages(reader, out)) return error;
  if (auto error = read_tool_choice(reader, names, out)) return error;
  if (auto error = reader.boolean("parallel_tool_calls", out.parallel_tool_calls)) return error;
  if (auto error = reader.boolean("logprobs", out.logprobs)) return error;
  std::optional<int64_t> top;
  if (auto error = reader.integer("top_logprobs", 0, 20, top)) return error;
  if (top) {
    if (!out.logprobs) {
      return invalid_request("'top_logprobs' needs 'logprobs' set to true", "top_logprobs");
    }
    out.top_logprobs = static_cast<uint32_t>(*top);
  }
  return std::nullopt;
}

}  // namespace v4::router
