// Responses request bodies: JSON syntax (request_json.h's bounded parser), then each member's
// type and range as OpenAI's API reference gives them; the first problem is the answer.
#include "router/responses/responses_request.h"

#include <limits>
#include <set>
#include <span>

#include "router/openai/openai_request_reader.h"
#include "router/responses/response_store.h"
#include "router/responses/responses_input.h"

namespace v4::router {
namespace {

// OpenAI's limits on metadata: 16 pairs, keys up to 64 characters, values up to 512.
constexpr size_t kMetadataPairs = 16, kMetadataKey = 64, kMetadataValue = 512;

ApiError bad(const std::string& member, const std::string& problem, const std::string& param) {
  return invalid_request("Invalid '" + member + "': " + problem, param);
}

// text.format: text, json_object, or json_schema {name, schema, strict} (structured outputs, as
// response_format on chat completions).
std::optional<ApiError> read_text_format(const RequestJson& format, OpenAiRequest& out) {
  if (!format.is_object() || !format.contains("type") || !format["type"].is_string())
    return bad("text.format", "must be an object with a string 'type'", "text");
  const std::string type = format["type"].get<std::string>();
  if (type == "text") return std::nullopt;
  if (type == "json_object") {
    out.constraint = OutputConstraintKind::kJsonObject;
    return std::nullopt;
  }
  if (type != "json_schema")
    return bad("text.format.type", "'" + type + "' is not supported", "text");
  if (!format.contains("schema"))
    return bad("text.format.schema", "is required for 'json_schema'", "text");
  if (format.contains("strict") && !format["strict"].is_boolean() && !format["strict"].is_null())
    return bad("text.format.strict", "must be a boolean", "text");
  return read_schema_constraint(format["schema"], "text.format.schema", out);
}

std::optional<ApiError> read_tool(const RequestJson& tool, const std::string& where,
                                  std::set<std::string>& names, OpenAiRequest& out,
                                  RequestJson& echo) {
  if (!tool.is_object())
    return bad(where, "must be an object, got " + json_type_name(tool), "tools");
  auto type = tool.find("type");
  if (type == tool.end() || !type->is_string()) {
    return bad(where + ".type", "must be a string", "tools");
  }
  if (*type != "function") {
    return bad(where + ".type",
               "tool type '" + type->get<std::string>() +
                   "' is not supported (only function tools run on this server)",
               "tools");
  }
  auto name = tool.find("name");
  if (name == tool.end() || !name->is_string() || !valid_tool_name(name->get<std::string>())) {
    return bad(where + ".name",
               "must be 1 to 64 characters of a-z, A-Z, 0-9, '_', '-', '.' and ':'", "tools");
  }
  if (names.count(name->get<std::string>()) != 0) {
    return bad(where + ".name", "'" + name->get<std::string>() + "' is given twice", "tools");
  }
  // The chat function object, keys in the order a chat request gives them: the encoder
  // renders it verbatim (spec §5.8).
  RequestJson function = RequestJson::object();
  function["name"] = *name;
  auto description = tool.find("description");
  if (description != tool.end() && !description->is_null()) {
    if (!description->is_string()) return bad(where + ".description", "must be a string", "tools");
    function["description"] = *description;
  }
  auto parameters = tool.find("parameters");
  if (parameters != tool.end() && !parameters->is_null()) {
    if (!parameters->is_object()) return bad(where + ".parameters", "must be an object", "tools");
    function["parameters"] = *parameters;
  }
  auto strict = tool.find("strict");
  if (strict != tool.end() && !strict->is_null() && !strict->is_boolean()) {
    return bad(where + ".strict", "must be a boolean", "tools");
  }
  // Enforced only when asked for explicitly (spec §5.8 calls, model/grammar/dsml_tool_grammar.h).
  if (strict != tool.end() && strict->is_boolean() && strict->get<bool>()) {
    if (auto error = check_strict_tool(
            name->get<std::string>(),
            function.contains("parameters") ? function["parameters"] : RequestJson(), where)) {
      return error;
    }
    ++out.strict_tools;
  }
  names.insert(name->get<std::string>());
  out.chat.tools.push_back(function.dump());
  RequestJson echoed = {{"type", "function"}, {"name", *name}};
  echoed["description"] = function.contains("description") ? function["description"] : nullptr;
  echoed["parameters"] = function.contains("parameters") ? function["parameters"] : nullptr;
  echoed["strict"] = strict != tool.end() && strict->is_boolean() ? strict->get<bool>() : true;
  echo.push_back(std::move(echoed));
  return std::nullopt;
}

std::optional<ApiError> read_tools(const RequestReader& reader, std::set<std::string>& names,
                                   OpenAiRequest& out, ResponsesState& state) {
  RequestJson echo = RequestJson::array();
  if (const RequestJson* tools = reader.find("tools")) {
    if (!tools->is_array()) return type_error("tools", "an array", *tools);
    for (size_t i = 0; i < tools->size(); ++i) {
      if (auto error =
              read_tool((*tools)[i], "tools[" + std::to_string(i) + "]", names, out, echo)) {
        return error;
      }
    }
  }
  state.echo["tools"] = std::move(echo);
  return std::nullopt;
}

std::optional<ApiError> read_tool_choice(const RequestReader& reader,
                                         const std::set<std::string>& names, OpenAiRequest& out,
                                         ResponsesState& state) {
  out.tool_choice = names.empty() ? ToolChoice::kNone : ToolChoice::kAuto;
  state.echo["tool_choice"] = "auto";
  const RequestJson* choice = reader.find("tool_choice");
  if (choice == nullptr) return std::nullopt;
  const char* kShapes =
      "must be 'none', 'auto', 'required' or {\"type\": \"function\", \"name\": ...}";
  if (choice->is_string()) {
    const std::string value = choice->get<std::string>();
    if (value == "none") {
      out.tool_choice = ToolChoice::kNone;
    } else if (value == "auto") {
      out.tool_choice = ToolChoice::kAuto;
    } else if (value == "required") {
      out.tool_choice = ToolChoice::kRequired;
    } else {
      return bad("tool_choice", std::string(kShapes) + ", got '" + value + "'", "tool_choice");
    }
  } else if (choice->is_object()) {
    auto type = choice->find("type");
    auto name = choice->find("name");
    if (type == choice->end() || *type != "function") {
      const std::string got = type != choice->end() && type->is_string()
                                  ? "'" + type->get<std::string>() + "'"
                                  : "no function type";
      return bad("tool_choice.type", "only function tools can be chosen, got " + got,
                 "tool_choice");
    }
    if (name == choice->end() || !name->is_string()) {
      return bad("tool_choice.name", "must be a string", "tool_choice");
    }
    out.tool_choice = ToolChoice::kNamed;
    out.tool_choice_name = name->get<std::string>();
    if (names.count(out.tool_choice_name) == 0) {
      return bad("tool_choice.name", "function '" + out.tool_choice_name + "' is not in 'tools'",
                 "tool_choice");
    }
  } else {
    return bad("tool_choice", kShapes, "tool_choice");
  }
  if (names.empty() && out.tool_choice != ToolChoice::kNone) {
    return bad("tool_choice", "a choice other than 'none' needs 'tools'", "tool_choice");
  }
  state.echo["tool_choice"] = *choice;
  return std::nullopt;
}

// reasoning.effort -> V4's mode (responses_request.h).
std::optional<ApiError> read_reasoning(const RequestReader& reader, OpenAiRequest& out,
                                       ResponsesState& state) {
  RequestJson echo = {{"effort", nullptr}, {"summary", nullptr}};
  out.chat.thinking = false;
  const RequestJson* reasoning = reader.find("reasoning");
  if (reasoning != nullptr) {
    if (!reasoning->is_object()) return type_error("reasoning", "an object", *reasoning);
    const RequestReader fields(*reasoning);
    std::string effort, summary;
    if (fields.string("effort", effort)) {
      return bad("reasoning.effort", "must be a string", "reasoning");
    }
    static const std::set<std::string> kEfforts = {"",       "none", "minimal", "low",
                                                   "medium", "high", "xhigh",   "max"};
    if (kEfforts.count(effort) == 0) {
      return bad(
          "reasoning.effort",
          "must be 'none', 'minimal', 'low', 'medium', 'high' or 'xhigh', got '" + effort + "'",
          "reasoning");
    }
    for (const char* key : {"summary", "generate_summary"}) {
      std::string value;
      if (fields.string(key, value) ||
          !(value.empty() || value == "auto" || value == "concise" || value == "detailed")) {
        return bad(std::string("reasoning.") + key, "must be 'auto', 'concise' or 'detailed'",
                   "reasoning");
      }
      if (!value.empty()) summary = value;
    }
    out.chat.thinking = effort != "none" && effort != "minimal";
    if (effort == "xhigh" || effort == "max") out.chat.reasoning_effort = "max";
    if (!effort.empty()) echo["effort"] = effort;
    if (!summary.empty()) echo["summary"] = summary;
  }
  state.echo["reasoning"] = std::move(echo);
  return std::nullopt;
}

std::optional<ApiError> read_sampling(const RequestReader& reader, OpenAiRequest& out,
                                      ResponsesState& state) {
  std::optional<int64_t> max_tokens, top_k, seed;
  if (auto error = reader.integer("max_output_tokens", 1, std::numeric_limits<uint32_t>::max(),
                                  max_tokens)) {
    return error;
  }
  if (max_tokens) out.max_tokens = static_cast<uint32_t>(*max_tokens);
  if (auto error = reader.number("temperature", {0, 2}, out.temperature)) return error;
  if (auto error = reader.number("top_p", {0, 1, true}, out.top_p)) return error;
  if (auto error = reader.integer("top_k", -1, std::numeric_limits<int32_t>::max(), top_k)) {
    return error;
  }
  if (top_k) out.top_k = static_cast<int32_t>(*top_k);
  if (auto error = reader.number("min_p", {0, 1}, out.min_p)) return error;
  constexpr float kInf = std::numeric_limits<float>::infinity();
  if (auto error = reader.number("repetition_penalty", {0, kInf, true}, out.repetition_penalty)) {
    return error;
  }
  if (auto error = reader.integer("seed", std::numeric_limits<int64_t>::min(),
                                  std::numeric_limits<int64_t>::max(), seed)) {
    return error;
  }
  if (seed) out.seed = static_cast<uint64_t>(*seed);
  std::optional<int64_t> top_logprobs, max_tool_calls;
  if (auto error = reader.integer("top_logprobs", 0, 20, top_logprobs)) return error;
  if (top_logprobs && *top_logprobs > 0) {
    return bad("top_logprobs", "logprobs are not supported on /v1/responses", "top_logprobs");
  }
  if (auto error = reader.integer("max_tool_calls", 1, std::numeric_limits<int32_t>::max(),
                                  max_tool_calls)) {
    return error;
  }
  state.echo["max_output_tokens"] = max_tokens ? RequestJson(*max_tokens) : RequestJson();
  state.echo["temperature"] = out.temperature;
  state.echo["top_p"] = out.top_p;
  return std::nullopt;
}

// vLLM's guided_choice, as on chat completions (a v4serve extension): the output is one of
// these texts.
std::optional<ApiError> read_guided_choice(const RequestReader& reader, OpenAiRequest& out) {
  const RequestJson* choices = reader.find("guided_choice");
  if (choices == nullptr) return std::nullopt;
  if (!choices->is_array() || choices->empty()) {
    return bad("guided_choice", "must be a non-empty array of strings", "guided_choice");
  }
  for (const RequestJson& choice : *choices) {
    if (!choice.is_string() || choice.get<std::string>().empty()) {
      return bad("guided_choice", "must contain non-empty strings only", "guided_choice");
    }
    out.guided_choice.push_back(choice.get<std::string>());
  }
  if (out.tool_choice == ToolChoice::kRequired || out.tool_choice == ToolChoice::kNamed) {
    return bad("guided_choice", "cannot be combined with a forced 'tool_choice'", "guided_choice");
  }
  if (out.constraint != OutputConstraintKind::kNone)
    return bad("guided_choice", "cannot be combined with a JSON 'text.format'", "guided_choice");
  return std::nullopt;
}

std::optional<ApiError> read_metadata(const RequestReader& reader, ResponsesState& state) {
  state.echo["metadata"] = RequestJson::object();
  const RequestJson* metadata = reader.find("metadata");
  if (metadata == nullptr) return std::nullopt;
  if (!metadata->is_object()) return type_error("metadata", "an object", *metadata);
  if (metadata->size() > kMetadataPairs) {
    return bad("metadata", "at most 16 pairs", "metadata");
  }
  for (auto it = metadata->begin(); it != metadata->end(); ++it) {
    if (it.key().size() > kMetadataKey) {
      return bad("metadata", "keys are at most 64 characters", "metadata");
    }
    if (!it.value().is_string() || it.value().get<std::string>().size() > kMetadataValue) {
      return bad("metadata." + it.key(), "must be a string of at most 512 characters", "metadata");
    }
  }
  state.echo["metadata"] = *metadata;
  return std::nullopt;
}

// Members accepted only with the one value this server implements.
std::optional<ApiError> read_modes(const RequestReader& reader, OpenAiRequest& out,
                                   ResponsesState& state) {
  if (auto error = reader.boolean("stream", out.stream)) return error;
  if (const RequestJson* options = reader.find("stream_options")) {
    if (!out.stream) {
      return bad("stream_options", "only allowed when 'stream' is true", "stream_options");
    }
    if (!options->is_object()) return type_error("stream_options", "an object", *options);
  }
  if (auto error = reader.boolean("store", state.store)) return error;
  bool background = false;
  if (auto error = reader.boolean("background", background)) return error;
  if (background) {
    return bad("background", "background responses are not supported", "background");
  }
  for (const char* key : {"conversation", "prompt"}) {
    if (reader.find(key) != nullptr) {
      return bad(key,
                 std::string(key) == "prompt" ? "prompt templates are not supported"
                                              : "conversations are not supported; chain "
                                                "responses with 'previous_response_id'",
                 key);
    }
  }
  std::string truncation = "disabled";
  if (auto error = reader.string("truncation", truncation)) return error;
  if (truncation != "disabled" && truncation != "auto") {
    return bad("truncation", "must be 'auto' or 'disabled', got '" + truncation + "'",
               "truncation");
  }
  RequestJson text = {{"format", {{"type", "text"}}}};
  if (const RequestJson* given = reader.find("text")) {
    if (!given->is_object()) return type_error("text", "an object", *given);
    const RequestReader fields(*given);
    if (const RequestJson* format = fields.find("format")) {
      if (auto error = read_text_format(*format, out)) return error;
      text["format"] = *format;
    }
    std::string verbosity;
    if (fields.string("verbosity", verbosity) || !(verbosity.empty() || verbosity == "low" ||
                                                   verbosity == "medium" || verbosity == "high")) {
      return bad("text.verbosity", "must be 'low', 'medium' or 'high'", "text");
    }
    if (!verbosity.empty()) text["verbosity"] = verbosity;
  }
  if (const RequestJson* include = reader.find("include")) {
    if (!include->is_array()) return type_error("include", "an array of strings", *include);
    for (const RequestJson& item : *include) {
      if (!item.is_string()) return type_error("include", "an array of strings", item);
    }
  }
  for (const char* key : {"user", "safety_identifier", "prompt_cache_key", "service_tier"}) {
    std::string ignored;
    if (auto error = reader.string(key, ignored)) return error;
  }
  if (auto error = reader.string("user", out.user)) return error;
  state.echo["store"] = state.store;
  state.echo["text"] = std::move(text);
  state.echo["truncation"] = truncation;
  state.echo["user"] = out.user.empty() ? RequestJson() : RequestJson(out.user);
  return std::nullopt;
}

// The previous response's conversation, or the 404 OpenAI gives for one it does not have.
std::optional<ApiError> read_previous(const RequestReader& reader, ResponseStore* store,
                                      OpenAiRequest& out, ResponsesState& state) {
  state.echo["previous_response_id"] = nullptr;
  std::string id;
  if (auto error = reader.string("previous_response_id", id)) return error;
  if (reader.find("previous_response_id") == nullptr) return std::nullopt;
  const StoreLookup found = store != nullptr ? store->find(id) : StoreLookup{};
  if (found.state != StoredState::kFound) {
    ApiError error = not_found(
        found.state == StoredState::kGone
            ? "Previous response with id '" + id +
                  "' is no longer stored: this server keeps the most recent responses up to "
                  "--responses-store-mib and this one was evicted or deleted."
            : "Previous response with id '" + id + "' not found.",
        "previous_response_not_found");
    error.param = "previous_response_id";
    return error;
  }
  state.conversation = found.response->conversation;
  out.chat.tool_call_dsml = found.response->tool_call_dsml;
  state.echo["previous_response_id"] = id;
  return std::nullopt;
}

// Calls of earlier outputs that come back as items render as the model wrote them.
void replay_stored_calls(ResponseStore* store, std::span<const ChatMessage> messages,
                         std::map<std::string, std::string>& dsml) {
  if (store == nullptr) return;
  for (const ChatMessage& message : messages) {
    for (const ChatToolCall& call : message.tool_calls) {
      if (dsml.count(call.id) != 0) continue;
      if (std::optional<std::string> bytes = store->tool_call_dsml(call)) dsml[call.id] = *bytes;
    }
  }
}

// Every member the route reads; others are skipped while parsing, never built.
const std::set<std::string, std::less<>> kKnownMembers = {"model",
                                                          "input",
                                                          "instructions",
                                                          "tools",
                                                          "tool_choice",
                                                          "parallel_tool_calls",
                                                          "reasoning",
                                                          "max_output_tokens",
                                                          "temperature",
                                                          "top_p",
                                                          "top_k",
                                                          "min_p",
                                                          "repetition_penalty",
                                                          "seed",
                                                          "stream",
                                                          "stream_options",
                                                          "store",
                                                          "previous_response_id",
                                                          "metadata",
                                                          "user",
                                                          "safety_identifier",
                                                          "prompt_cache_key",
                                                          "service_tier",
                                                          "text",
                                                          "truncation",
                                                          "include",
                                                          "background",
                                                          "conversation",
                                                          "prompt",
                                                          "top_logprobs",
                                                          "max_tool_calls",
                                                          "guided_choice"};

}  // namespace

std::optional<ApiError> parse_responses_request(std::string_view body, ResponseStore* store,
                                                OpenAiRequest& out, ResponsesState& state) {
  out = OpenAiRequest();
  out.endpoint = Endpoint::kChat;
  state = ResponsesState();
  RequestJson json;
  if (auto error = parse_request_json(body, JsonLimits(), kKnownMembers, json)) return error;
  if (!json.is_object()) return invalid_request("the request body must be a JSON object");
  const RequestReader reader(json);
  if (reader.find("model") == nullptr) return bad("model", "is required", "model");
  if (auto error = reader.string("model", out.model)) return error;
  std::string instructions;
  if (auto error = reader.string("instructions", instructions)) return error;
  state.echo["instructions"] =
      reader.find("instructions") ? RequestJson(instructions) : RequestJson();
  if (auto error = read_sampling(reader, out, state)) return error;
  state.echo["model"] = out.model;
  std::set<std::string> names;
  if (auto error = read_tools(reader, names, out, state)) return error;
  if (auto error = read_tool_choice(reader, names, out, state)) return error;
  if (auto error = reader.boolean("parallel_tool_calls", out.parallel_tool_calls)) return error;
  state.echo["parallel_tool_calls"] = out.parallel_tool_calls;
  if (auto error = read_reasoning(reader, out, state)) return error;
  if (auto error = read_modes(reader, out, state)) return error;
  if (auto error = read_metadata(reader, state)) return error;
  if (auto error = read_guided_choice(reader, out)) return error;
  if (out.constraint != OutputConstraintKind::kNone &&
      (out.tool_choice == ToolChoice::kRequired || out.tool_choice == ToolChoice::kNamed)) {
    return bad("text.format", "cannot be combined with a forced 'tool_choice'", "text");
  }
  if (auto error = read_previous(reader, store, out, state)) return error;
  const RequestJson* input = reader.find("input");
  if (input == nullptr) return bad("input", "is required", "input");
  const size_t first_new = state.conversation.size();
  if (auto error = read_responses_input(*input, state.conversation)) return error;
  replay_stored_calls(store, std::span(state.conversation).subspan(first_new),
                      out.chat.tool_call_dsml);
  if (reader.find("instructions") != nullptr) {
    ChatMessage system;
    system.role = "system";
    system.content = instructions;
    out.chat.messages.push_back(std::move(system));
  }
  out.chat.messages.insert(out.chat.messages.end(), state.conversation.begin(),
                           state.conversation.end());
  return std::nullopt;
}

}  // namespace v4::router
