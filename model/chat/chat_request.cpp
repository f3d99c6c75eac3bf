// OpenAI request body -> ChatRequest (spec §5.8). Validation happens here, at the boundary.
#include "model/chat/chat_request.h"

#include "model/chat/chat_json.h"

namespace v4 {
namespace {

Result<std::string> read_content(const OrderedJson& message, const std::string& where) {
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    // Text-only model: concatenate the text parts of a parts-list content.
    std::string text;
    for (const OrderedJson& part : *it) {
      if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
          !part["text"].is_string()) {
        return Status::error(where + ".content: only text parts are supported");
      }
      text += part["text"].get<std::string>();
    }
    return text;
  }
  return Status::error(where + ".content must be a string, an array of text parts or null");
}

Result<ChatToolCall> read_tool_call(const OrderedJson& call, const std::string& where) {
  if (!call.is_object()) return Status::error(where + " must be an object");
  ChatToolCall out;
  if (call.contains("id") && call["id"].is_string()) out.id = call["id"].get<std::string>();
  auto function = call.find("function");
  if (function == call.end() || !function->is_object()) {
    return Status::error(where + ".function must be an object");
  }
  auto name = function->find("name");
  if (name == function->end() || !name->is_string()) {
    return Status::error(where + ".function.name must be a string");
  }
  out.name = name->get<std::string>();
  auto arguments = function->find("arguments");
  if (arguments == function->end() || arguments->is_null()) {
    out.arguments = "{}";
  } else if (arguments->is_string()) {
    out.arguments = arguments->get<std::string>();
  } else {
    out.arguments = arguments->dump();
    out.arguments_is_text = false;
  }
  return out;
}

Result<ChatMessage> read_message(const OrderedJson& message, const std::string& where) {
  if (!message.is_object()) return Status::error(where + " must be an object");
  ChatMessage out;
  auto role = message.find("role");
  if (role == message.end() || !role->is_string()) {
    return Status::error(where + ".role must be a string");
  }
  out.role = role->get<std::string>();
  static const char* const kRoles[] = {"system",    "developer", "user",
                                       "assistant", "tool",      "latest_reminder"};
  bool known = false;
  for (const char* r : kRoles) known = known || out.role == r;
  if (!known) return Status::error(where + ".role \"" + out.role + "\" is not supported");
  Result<std::string> content = read_content(message, where);
  if (!content) return content.status();
  out.content = std::move(*content);
  for (const char* key : {"reasoning_content", "reasoning"}) {
    auto it = message.find(key);
    if (it != message.end() && it->is_string()) {
      out.reasoning = it->get<std::string>();
      break;
    }
  }
  if (auto calls = message.find("tool_calls"); calls != message.end() && !calls->is_null()) {
    if (!calls->is_array()) return Status::error(where + ".tool_calls must be an array");
    for (size_t i = 0; i < calls->size(); ++i) {
      Result<ChatToolCall> call =
          read_tool_call((*calls)[i], where + ".tool_calls[" + std::to_string(i) + "]");
      if (!call) return call.status();
      out.tool_calls.push_back(std::move(*call));
    }
  }
  if (auto id = message.find("tool_call_id"); id != message.end() && id->is_string()) {
    out.tool_call_id = id->get<std::string>();
  }
  if (auto task = message.find("task"); task != message.end() && task->is_string()) {
    out.task = task->get<std::string>();
  }
  return out;
}

Result<bool> read_thinking(const OrderedJson& request) {
  if (auto it = request.find("thinking"); it != request.end() && !it->is_null()) {
    if (it->is_boolean()) return it->get<bool>();
    if (it->is_object() && (*it)["type"].is_string()) {
      const std::string type = (*it)["type"].get<std::string>();
      if (type == "enabled") return true;
      if (type == "disabled") return false;
    }
    return Status::error("thinking must be a boolean or {\"type\": \"enabled\"|\"disabled\"}");
  }
  if (auto kwargs = request.find("chat_template_kwargs");
      kwargs != request.end() && kwargs->is_object()) {
    if (auto it = kwargs->find("thinking"); it != kwargs->end() && it->is_boolean()) {
      return it->get<bool>();
    }
  }
  return false;
}

}  // namespace

Result<ChatRequest> parse_chat_request(std::string_view json_text) {
  OrderedJson request = OrderedJson::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) return Status::error("request: not valid JSON");
  return parse_chat_request_json(request);
}

Result<ChatRequest> parse_chat_request_json(const OrderedJson& request) {
  if (!request.is_object()) return Status::error("request: must be a JSON object");
  ChatRequest out;
  auto messages = request.find("messages");
  if (messages == request.end() || !messages->is_array() || messages->empty()) {
    return Status::error("request.messages must be a non-empty array");
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    Result<ChatMessage> message =
        read_message((*messages)[i], "request.messages[" + std::to_string(i) + "]");
    if (!message) return message.status();
    out.messages.push_back(std::move(*message));
  }
  if (auto tools = request.find("tools"); tools != request.end() && !tools->is_null()) {
    if (!tools->is_array()) return Status::error("request.tools must be an array");
    for (size_t i = 0; i < tools->size(); ++i) {
      const OrderedJson& tool = (*tools)[i];
      if (!tool.is_object() || !tool.contains("function") || !tool["function"].is_object()) {
        return Status::error("request.tools[" + std::to_string(i) + "].function must be an object");
      }
      out.tools.push_back(tool["function"].dump());
    }
  }
  Result<bool> thinking = read_thinking(request);
  if (!thinking) return thinking.status();
  out.thinking = *thinking;
  if (auto effort = request.find("reasoning_effort");
      effort != request.end() && !effort->is_null()) {
    if (!effort->is_string()) return Status::error("request.reasoning_effort must be a string");
    const std::string value = effort->get<std::string>();
    if (value == "max" || value == "high") out.reasoning_effort = value;
  }
  if (auto task = request.find("task"); task != request.end() && !task->is_null()) {
    if (!task->is_string()) return Status::error("request.task must be a string");
    bool attached = false;
    for (auto it = out.messages.rbegin(); it != out.messages.rend() && !attached; ++it) {
      if (it->role == "user" || it->role == "developer") {
        it->task = task->get<std::string>();
        attached = true;
      }
    }
    if (!attached) return Status::error("request.task needs a user or developer message");
  }
  if (auto replay = request.find("dsml_replay"); replay != request.end() && !replay->is_null()) {
    if (!replay->is_object()) return Status::error("request.dsml_replay must be an object");
    for (auto it = replay->begin(); it != replay->end(); ++it) {
      if (!it.value().is_string()) {
        return Status::error("request.dsml_replay[\"" + it.key() + "\"] must be a string");
      }
      out.tool_call_dsml[it.key()] = it.value().get<std::string>();
    }
  }
  return out;
}

}  // namespace v4
