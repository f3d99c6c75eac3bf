// Responses input items -> ChatMessages. Items the model produced (reasoning, assistant
// messages, function calls) that follow one another form one assistant turn, as the model
// wrote them in one output; user, system and developer messages and function-call outputs
// stand alone.
#include "router/responses/responses_input.h"

#include <string>

#include "router/openai/openai_request_reader.h"

namespace v4::router {
namespace {

ApiError bad(const std::string& path, const std::string& problem) {
  return invalid_request("Invalid '" + path + "': " + problem, "input");
}

std::optional<ApiError> member_string(const RequestJson& object, const char* key,
                                      const std::string& path, std::string& out) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) {
    return bad(path + "." + key,
               "must be a string, got " + (it == object.end() ? "nothing" : json_type_name(*it)));
  }
  out = it->get<std::string>();
  return std::nullopt;
}

// Parts the model cannot read, with the reason given back.
std::optional<ApiError> refuse_media(const std::string& type, const std::string& path) {
  if (type == "input_image") return bad(path, "images are not supported by this model");
  if (type == "input_file") return bad(path, "files are not supported by this model");
  if (type == "input_audio") return bad(path, "audio is not supported by this model");
  return std::nullopt;
}

// The text of a content list: the parts' texts concatenated, as chat completions join text
// parts. `assistant`: the model's own parts (output_text, refusal) are accepted too.
std::optional<ApiError> content_text(const RequestJson& content, const std::string& path,
                                     bool assistant, std::string& out) {
  if (content.is_string()) {
    out = content.get<std::string>();
    return std::nullopt;
  }
  if (!content.is_array()) {
    return bad(path,
               "must be a string or an array of content parts, got " + json_type_name(content));
  }
  out.clear();
  for (size_t i = 0; i < content.size(); ++i) {
    const RequestJson& part = content[i];
    const std::string where = path + "[" + std::to_string(i) + "]";
    if (!part.is_object()) return bad(where, "must be an object, got " + json_type_name(part));
    std::string type, text;
    if (auto error = member_string(part, "type", where, type)) return error;
    if (auto error = refuse_media(type, where + ".type")) return error;
    if (type == "input_text" || type == "output_text" || type == "text") {
      if (auto error = member_string(part, "text", where, text)) return error;
    } else if (assistant && type == "refusal") {
      if (auto error = member_string(part, "refusal", where, text)) return error;
    } else {
      return bad(where + ".type", "content part type '" + type + "' is not supported here");
    }
    out += text;
  }
  return std::nullopt;
}

class InputReader {
 public:
  explicit InputReader(std::vector<ChatMessage>& out) : out_(out) {}

  std::optional<ApiError> item(const RequestJson& item, const std::string& path) {
    if (!item.is_object()) return bad(path, "must be an object, got " + json_type_name(item));
    std::string type = "message";  // easy input messages may leave out the type
    if (auto it = item.find("type"); it != item.end() && !it->is_null()) {
      if (auto error = member_string(item, "type", path, type)) return error;
    }
    if (type == "message") return message(item, path);
    if (type == "function_call") return function_call(item, path);
    if (type == "function_call_output") return function_call_output(item, path);
    if (type == "reasoning") return reasoning(item, path);
    if (type == "item_reference") {
      return bad(path + ".type", "item references are not supported; send the item itself");
    }
    return bad(path + ".type", "input item type '" + type + "' is not supported");
  }

  // The last item must leave the model to answer: a conversation may not end inside an
  // assistant turn (no prefill) or with a call that has no output.
  std::optional<ApiError> finish() const {
    if (!assistant_open_) return std::nullopt;
    const ChatMessage& last = out_.back();
    if (!last.tool_calls.empty()) {
      return invalid_request("Invalid 'input': no function_call_output item for function call '" +
                                 last.tool_calls.back().id + "'",
                             "input");
    }
    return invalid_request(
        "Invalid 'input': the last item must not be an assistant message or a reasoning item "
        "(continuing the model's own output is not supported)",
        "input");
  }

 private:
  // The assistant turn that model-produced items join.
  ChatMessage& assistant() {
    if (!assistant_open_) {
      ChatMessage message;
      message.role = "assistant";
      out_.push_back(std::move(message));
      assistant_open_ = true;
    }
    return out_.back();
  }

  std::optional<ApiError> message(const RequestJson& item, const std::string& path) {
    std::string role;
    if (auto error = member_string(item, "role", path, role)) return error;
    if (role != "user" && role != "system" && role != "developer" && role != "assistant") {
      return bad(path + ".role",
                 "must be 'user', 'assistant', 'system' or 'developer', got '" + role + "'");
    }
    auto content = item.find("content");
    if (content == item.end()) return bad(path + ".content", "is required");
    std::string text;
    if (auto error = content_text(*content, path + ".content", role == "assistant", text)) {
      return error;
    }
    if (role == "assistant") {
      assistant().content += text;
      return std::nullopt;
    }
    assistant_open_ = false;
    ChatMessage message;
    message.role = role;
    message.content = std::move(text);
    out_.push_back(std::move(message));
    return std::nullopt;
  }

  std::optional<ApiError> function_call(const RequestJson& item, const std::string& path) {
    ChatToolCall call;
    if (auto error = member_string(item, "call_id", path, call.id)) return error;
    if (call.id.empty()) return bad(path + ".call_id", "must not be empty");
    if (auto error = member_string(item, "name", path, call.name)) return error;
    if (!valid_tool_name(call.name)) {
      return bad(path + ".name",
                 "must be 1 to 64 characters of a-z, A-Z, 0-9, '_', '-', '.' and ':'");
    }
    if (auto error = member_string(item, "arguments", path, call.arguments)) return error;
    assistant().tool_calls.push_back(std::move(call));
    return std::nullopt;
  }

  std::optional<ApiError> function_call_output(const RequestJson& item, const std::string& path) {
    ChatMessage message;
    message.role = "tool";
    if (auto error = member_string(item, "call_id", path, message.tool_call_id)) return error;
    auto output = item.find("output");
    if (output == item.end()) return bad(path + ".output", "is required");
    if (auto error = content_text(*output, path + ".output", false, message.content)) {
      return error;
    }
    assistant_open_ = false;
    out_.push_back(std::move(message));
    return std::nullopt;
  }

  // The reasoning text: its reasoning_text content, else its summary (what a client that
  // keeps only summaries sends back); encrypted content is another model's and is dropped.
  std::optional<ApiError> reasoning(const RequestJson& item, const std::string& path) {
    std::string text;
    bool any = false;
    for (const char* key : {"content", "summary"}) {
      auto parts = item.find(key);
      if (parts == item.end() || parts->is_null()) continue;
      const std::string where = path + "." + key;
      if (!parts->is_array()) return bad(where, "must be an array, got " + json_type_name(*parts));
      if (any) continue;
      const char* expected = std::string(key) == "content" ? "reasoning_text" : "summary_text";
      for (size_t i = 0; i < parts->size(); ++i) {
        const RequestJson& part = (*parts)[i];
        const std::string at = where + "[" + std::to_string(i) + "]";
        if (!part.is_object()) return bad(at, "must be an object, got " + json_type_name(part));
        std::string type, piece;
        if (auto error = member_string(part, "type", at, type)) return error;
        if (type != expected) return bad(at + ".type", std::string("must be '") + expected + "'");
        if (auto error = member_string(part, "text", at, piece)) return error;
        if (i > 0) text += "\n\n";
        text += piece;
        any = true;
      }
    }
    ChatMessage& turn = assistant();
    turn.reasoning = turn.reasoning.value_or("") + text;
    return std::nullopt;
  }

  std::vector<ChatMessage>& out_;
  bool assistant_open_ = false;
};

}  // namespace

std::optional<ApiError> read_responses_input(const RequestJson& input,
                                             std::vector<ChatMessage>& out) {
  if (input.is_string()) {
    ChatMessage message;
    message.role = "user";
    message.content = input.get<std::string>();
    out.push_back(std::move(message));
    return std::nullopt;
  }
  if (!input.is_array()) {
    return invalid_request(
        "Invalid 'input': must be a string or an array of items, got " + json_type_name(input),
        "input");
  }
  if (input.empty()) return invalid_request("Invalid 'input': must not be empty", "input");
  InputReader reader(out);
  for (size_t i = 0; i < input.size(); ++i) {
    if (auto error = reader.item(input[i], "input[" + std::to_string(i) + "]")) return error;
  }
  return reader.finish();
}

}  // namespace v4::router
