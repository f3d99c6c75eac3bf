// Anthropic Messages request bodies: JSON syntax (request_json.h's bounded parser), then each
// member's type and range as Anthropic's API reference gives them (temperature 0..1,
// budget_tokens >= 1024 and below max_tokens, ...); the first problem is the 400 answer.
#include "router/anthropic/messages_request.h"

#include <limits>
#include <set>

#include "router/anthropic/messages_content.h"
#include "router/openai/openai_request_reader.h"

namespace v4::router {
namespace {

// Stop sequences a request may give: each costs a match per output byte.
constexpr size_t kMaxStopSequences = 64;

std::optional<ApiError> read_tool(const RequestJson& tool, const std::string& where,
                                  std::set<std::string>& names, std::vector<std::string>& out,
                                  size_t& strict_tools) {
  if (!tool.is_object()) return invalid_request(where + ": must be an object", "tools");
  if (auto type = tool.find("type"); type != tool.end() && !type->is_null() && *type != "custom") {
    const std::string name = type->is_string() ? type->get<std::string>() : type->dump();
    return invalid_request(where + ".type: tool type '" + name +
                               "' is not supported (only client tools with an input_schema)",
                           "tools");
  }
  auto name = tool.find("name");
  if (name == tool.end() || !name->is_string() || !valid_tool_name(name->get<std::string>())) {
    return invalid_request(
        where + ".name: must be 1 to 64 characters of a-z, A-Z, 0-9, '_', '-', '.' and ':'",
        "tools");
  }
  auto schema = tool.find("input_schema");
  if (schema == tool.end() || !schema->is_object()) {
    return invalid_request(where + ".input_schema: must be an object", "tools");
  }
  // The OpenAI function object, key order as a chat request would give it: the encoder
  // renders it verbatim (spec §5.8).
  RequestJson function = RequestJson::object();
  function["name"] = *name;
  if (auto description = tool.find("description");
      description != tool.end() && !description->is_null()) {
    if (!description->is_string()) {
      return invalid_request(where + ".description: must be a string", "tools");
    }
    function["description"] = *description;
  }
  function["parameters"] = *schema;
  // strict: true enforces the tool's calls (spec §5.8, model/grammar/dsml_tool_grammar.h).
  if (auto strict = tool.find("strict"); strict != tool.end() && !strict->is_null()) {
    if (!strict->is_boolean())
      return invalid_request(where + ".strict: must be a boolean", "tools");
    if (strict->get<bool>()) {
      if (auto error = check_strict_tool(name->get<std::string>(), *schema, where)) return error;
      ++strict_tools;
    }
  }
  names.insert(name->get<std::string>());
  out.push_back(function.dump());
  return std::nullopt;
}

std::optional<ApiError> read_tools(const RequestReader& reader, std::set<std::string>& names,
                                   OpenAiRequest& out) {
  const RequestJson* tools = reader.find("tools");
  if (tools == nullptr) return std::nullopt;
  if (!tools->is_array()) return type_error("tools", "an array", *tools);
  for (size_t i = 0; i < tools->size(); ++i) {
    if (auto error = read_tool((*tools)[i], "tools." + std::to_string(i), names, out.chat.tools,
                               out.strict_tools)) {
      return error;
    }
  }
  return std::nullopt;
}

std::optional<ApiError> read_tool_choice(const RequestReader& reader,
                                         const std::set<std::string>& names, OpenAiRequest& out) {
  out.tool_choice = names.empty() ? ToolChoice::kNone : ToolChoice::kAuto;
  const RequestJson* choice = reader.find("tool_choice");
  if (choice == nullptr) return std::nullopt;
  if (!choice->is_object()) return type_error("tool_choice", "an object", *choice);
  const RequestReader fields(*choice);
  std::string type;
  if (auto error = fields.string("type", type)) return error;
  if (type == "auto") {
    out.tool_choice = ToolChoice::kAuto;
  } else if (type == "any") {
    out.tool_choice = ToolChoice::kRequired;
  } else if (type == "none") {
    out.tool_choice = ToolChoice::kNone;
  } else if (type == "tool") {
    if (auto error = fields.string("name", out.tool_choice_name)) return error;
    if (names.count(out.tool_choice_name) == 0) {
      return invalid_request("tool_choice.name: '" + out.tool_choice_name + "' is not in 'tools'",
                             "tool_choice");
    }
    out.tool_choice = ToolChoice::kNamed;
  } else {
    return invalid_request(
        "tool_choice.type: must be 'auto', 'any', 'tool' or 'none', got '" + type + "'",
        "tool_choice");
  }
  bool disable_parallel = false;
  if (auto error = fields.boolean("disable_parallel_tool_use", disable_parallel)) {
    return invalid_request("tool_choice.disable_parallel_tool_use: must be a boolean",
                           "tool_choice");
  }
  out.parallel_tool_calls = !disable_parallel;
  if (names.empty() && out.tool_choice != ToolChoice::kNone) {
    return invalid_request("tool_choice: '" + type + "' needs 'tools'", "tool_choice");
  }
  return std::nullopt;
}

// thinking -> V4's mode; output_config.effort "max" -> Think-Max (messages_request.h).
std::optional<ApiError> read_thinking(const RequestReader& reader, OpenAiRequest& out) {
  out.chat.thinking = false;
  if (const RequestJson* thinking = reader.find("thinking")) {
    if (!thinking->is_object()) return type_error("thinking", "an object", *thinking);
    const RequestReader fields(*thinking);
    std::string type, display;
    if (fields.string("type", type) || fields.find("type") == nullptr) {
      return invalid_request("thinking.type: must be a string", "thinking");
    }
    if (type == "enabled") {
      std::optional<int64_t> budget;
      if (auto error =
              fields.integer("budget_tokens", 1024, std::numeric_limits<int64_t>::max(), budget);
          error || !budget) {
        return invalid_request("thinking.budget_tokens: must be an integer of at least 1024",
                               "thinking");
      }
      if (out.max_tokens && static_cast<uint64_t>(*budget) >= *out.max_tokens) {
        return invalid_request("thinking.budget_tokens: must be less than max_tokens", "thinking");
      }
      out.chat.thinking = true;
    } else if (type == "adaptive") {
      out.chat.thinking = true;
    } else if (type != "disabled" && type != "between_tools") {
      return invalid_request(
          "thinking.type: must be 'enabled', 'adaptive', 'disabled' or "
          "'between_tools', got '" +
              type + "'",
          "thinking");
    }
    if (fields.string("display", display) ||
        (!display.empty() && display != "summarized" && display != "omitted")) {
      return invalid_request("thinking.display: must be 'summarized' or 'omitted'", "thinking");
    }
  }
  const RequestJson* config = reader.find("output_config");
  if (config == nullptr) return std::nullopt;
  if (!config->is_object()) return type_error("output_config", "an object", *config);
  const RequestReader fields(*config);
  if (fields.find("format") != nullptr) {
    return invalid_request("output_config.format: structured outputs are not supported",
                           "output_config");
  }
  std::string effort;
  if (fields.string("effort", effort)) {
    return invalid_request("output_config.effort: must be a string", "output_config");
  }
  static const std::set<std::string> kEfforts = {"", "low", "medium", "high", "xhigh", "max"};
  if (kEfforts.count(effort) == 0) {
    return invalid_request(
        "output_config.effort: must be 'low', 'medium', 'high', 'xhigh' or 'max', got '" + effort +
            "'",
        "output_config");
  }
  if (effort == "max") out.chat.reasoning_effort = "max";
  return std::nullopt;
}

std::optional<ApiError> read_stop_sequences(const RequestReader& reader, OpenAiRequest& out) {
  const RequestJson* stops = reader.find("stop_sequences");
  if (stops == nullptr) return std::nullopt;
  if (!stops->is_array()) return type_error("stop_sequences", "an array of strings", *stops);
  if (stops->size() > kMaxStopSequences) {
    return invalid_request("stop_sequences: at most " + std::to_string(kMaxStopSequences) +
                               " sequences, got " + std::to_string(stops->size()),
                           "stop_sequences");
  }
  for (size_t i = 0; i < stops->size(); ++i) {
    const RequestJson& stop = (*stops)[i];
    if (!stop.is_string() || stop.get<std::string>().empty()) {
      return invalid_request("stop_sequences." + std::to_string(i) + ": must be a non-empty string",
                             "stop_sequences");
    }
    out.stop.push_back(stop.get<std::string>());
  }
  return std::nullopt;
}

// vLLM's guided_choice, as on chat completions: the output is one of these texts. A v4serve
// extension (Anthropic's SDKs send it with extra_body).
std::optional<ApiError> read_guided_choice(const RequestReader& reader, OpenAiRequest& out) {
  const RequestJson* choices = reader.find("guided_choice");
  if (choices == nullptr) return std::nullopt;
  if (!choices->is_array() || choices->empty()) {
    return invalid_request("guided_choice: must be a non-empty array of strings", "guided_choice");
  }
  for (const RequestJson& choice : *choices) {
    if (!choice.is_string() || choice.get<std::string>().empty()) {
      return invalid_request("guided_choice: must contain non-empty strings only", "guided_choice");
    }
    out.guided_choice.push_back(choice.get<std::string>());
  }
  if (out.tool_choice == ToolChoice::kRequired || out.tool_choice == ToolChoice::kNamed) {
    return invalid_request("guided_choice: cannot be combined with tool_choice 'any' or 'tool'",
                           "guided_choice");
  }
  return std::nullopt;
}

std::optional<ApiError> read_sampling(const RequestReader& reader, MessagesRoute route,
                                      OpenAiRequest& out) {
  std::optional<int64_t> max_tokens, top_k;
  if (route == MessagesRoute::kCreate && reader.find("max_tokens") == nullptr) {
    return invalid_request("max_tokens: field required", "max_tokens");
  }
  if (auto error =
          reader.integer("max_tokens", 1, std::numeric_limits<uint32_t>::max(), max_tokens)) {
    return error;
  }
  if (max_tokens) out.max_tokens = static_cast<uint32_t>(*max_tokens);
  if (auto error = reader.boolean("stream", out.stream)) return error;
  if (auto error = reader.number("temperature", {0, 1}, out.temperature)) return error;
  if (auto error = reader.number("top_p", {0, 1, true}, out.top_p)) return error;
  if (auto error = reader.integer("top_k", 0, std::numeric_limits<int32_t>::max(), top_k)) {
    return error;
  }
  if (top_k) out.top_k = static_cast<int32_t>(*top_k);
  if (const RequestJson* metadata = reader.find("metadata"); metadata && !metadata->is_object()) {
    return type_error("metadata", "an object", *metadata);
  }
  return read_stop_sequences(reader, out);
}

// Every member either route reads; others are skipped while parsing, never built.
const std::set<std::string, std::less<>> kKnownMembers = {
    "model",       "max_tokens",     "system",        "messages",    "tools",
    "tool_choice", "thinking",       "stream",        "temperature", "top_p",
    "top_k",       "stop_sequences", "output_config", "metadata",    "guided_choice"};

}  // namespace

std::optional<ApiError> parse_messages_request(MessagesRoute route, std::string_view body,
                                               OpenAiRequest& out) {
  out = OpenAiRequest();
  out.endpoint = Endpoint::kChat;
  RequestJson json;
  if (auto error = parse_request_json(body, JsonLimits(), kKnownMembers, json)) return error;
  if (!json.is_object()) return invalid_request("the request body must be a JSON object");
  const RequestReader reader(json);
  if (reader.find("model") == nullptr) return invalid_request("model: field required", "model");
  if (auto error = reader.string("model", out.model)) return error;
  if (auto error = read_sampling(reader, route, out)) return error;
  std::set<std::string> names;
  if (auto error = read_tools(reader, names, out)) return error;
  if (auto error = read_tool_choice(reader, names, out)) return error;
  if (auto error = read_anthropic_messages(reader, out.chat)) return error;
  if (auto error = read_anthropic_system(reader, out.chat)) return error;
  if (auto error = read_thinking(reader, out)) return error;
  return read_guided_choice(reader, out);
}

}  // namespace v4::router
