// OpenAI request bodies (POST /v1/chat/completions, /v1/completions): JSON syntax, then each
// member's type and range; the first problem becomes the 400 answer. Sampling members follow
// OpenAI's ranges and vLLM's extensions (top_k, min_p, repetition_penalty, stop_token_ids,
// ignore_eos, guided_choice).
#include "router/openai/openai_request.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include "model/grammar/dsml_tool_grammar.h"
#include "model/grammar/regex_grammar.h"
#include "router/openai/openai_request_reader.h"

namespace v4::router {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::optional<ApiError> read_prompt(const RequestReader& reader, size_t vocab_size,
                                    OpenAiRequest& out) {
  const RequestJson* prompt = reader.find("prompt");
  if (prompt == nullptr) return invalid_request("'prompt' is a required property", "prompt");
  const char* kShapes =
      "a string, an array of strings, an array of token ids or an array of token-id arrays";
  if (prompt->is_string()) {
    out.text_prompts.push_back(prompt->get<std::string>());
    return std::nullopt;
  }
  if (!prompt->is_array()) return type_error("prompt", kShapes, *prompt);
  if (prompt->empty()) return invalid_request("'prompt' must not be empty", "prompt");
  const RequestJson& first = prompt->front();
  if (first.is_string()) {
    for (const RequestJson& item : *prompt) {
      if (!item.is_string()) return type_error("prompt", kShapes, item);
      out.text_prompts.push_back(item.get<std::string>());
    }
    return std::nullopt;
  }
  if (first.is_number()) {
    out.token_prompts.emplace_back();
    return reader.token_ids("prompt", vocab_size, out.token_prompts.back());
  }
  if (!first.is_array()) return type_error("prompt", kShapes, first);
  for (const RequestJson& item : *prompt) {
    if (!item.is_array()) return type_error("prompt", kShapes, item);
    if (item.empty()) return invalid_request("'prompt' must not contain empty arrays", "prompt");
    RequestJson wrapper = RequestJson::object();
    wrapper["prompt"] = item;
    out.token_prompts.emplace_back();
    if (auto error =
            RequestReader(wrapper).token_ids("prompt", vocab_size, out.token_prompts.back())) {
      return error;
    }
  }
  return std::nullopt;
}

std::optional<ApiError> read_completions_members(const RequestReader& reader, size_t vocab_size,
                                                 OpenAiRequest& out) {
  if (auto error = read_prompt(reader, vocab_size, out)) return error;
  if (auto error = reader.boolean("echo", out.echo)) return error;
  std::optional<int64_t> logprobs;
  if (auto error = reader.integer("logprobs", 0, 5, logprobs)) return error;
  if (logprobs) out.completion_logprobs = static_cast<uint32_t>(*logprobs);
  std::optional<int64_t> prompt_logprobs;
  if (auto error = reader.integer("prompt_logprobs", 0, 20, prompt_logprobs)) return error;
  if (prompt_logprobs) out.prompt_logprobs = static_cast<uint32_t>(*prompt_logprobs);
  if (reader.find("suffix") != nullptr) {
    return invalid_request("'suffix' is not supported by this model", "suffix");
  }
  return std::nullopt;
}

std::optional<ApiError> read_logit_bias(const RequestReader& reader, size_t vocab_size,
                                        OpenAiRequest& out) {
  const RequestJson* bias = reader.find("logit_bias");
  if (bias == nullptr) return std::nullopt;
  if (!bias->is_object()) return type_error("logit_bias", "an object", *bias);
  for (auto it = bias->begin(); it != bias->end(); ++it) {
    const std::string& key = it.key();
    uint64_t id = 0;
    const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
    if (key.empty() || ec != std::errc() || end != key.data() + key.size() || id >= vocab_size) {
      return invalid_request("'logit_bias' key '" + key + "' is not a token id in [0, " +
                                 std::to_string(vocab_size) + ")",
                             "logit_bias");
    }
    const RequestJson& value = it.value();
    if (!value.is_number() || !(std::fabs(value.get<double>()) <= 100.0)) {
      return invalid_request(
          "'logit_bias' value for token " + key + " must be a number between -100 and 100",
          "logit_bias");
    }
    out.logit_bias.emplace_back(static_cast<int32_t>(id), value.get<float>());
  }
  return std::nullopt;
}

std::optional<ApiError> read_choices(const RequestJson& value, const std::string& key,
                                     std::vector<std::string>& out) {
  if (!value.is_array()) return type_error(key, "an array of strings", value);
  if (value.empty()) return invalid_request("'" + key + "' must not be empty", key);
  for (const RequestJson& item : value) {
    if (!item.is_string() || item.get<std::string>().empty()) {
      return invalid_request("'" + key + "' must contain non-empty strings only", key);
    }
    out.push_back(item.get<std::string>());
  }
  return std::nullopt;
}

// A JSON schema (an object, or vLLM's JSON text of one) compiled to check it; kept as text.
std::optional<ApiError> read_schema(const RequestJson& value, const std::string& param,
                                    OpenAiRequest& out) {
  RequestJson schema = value;
  if (value.is_string()) {
    schema = RequestJson::parse(value.get<std::string>(), nullptr, /*allow_exceptions=*/false);
    if (schema.is_discarded()) return invalid_request("'" + param + "' is not valid JSON", param);
  }
  if (!schema.is_object()) return type_error(param, "a JSON schema object", value);
  Result<JsonGrammar> grammar = compile_json_schema(schema);
  if (!grammar) return invalid_request("'" + param + "': " + grammar.message(), param);
  out.constraint = OutputConstraintKind::kJsonSchema;
  out.constraint_source = schema.dump();
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> check_strict_tool(const std::string& name, const RequestJson& parameters,
                                          const std::string& where) {
  Result<DsmlTool> tool = compile_dsml_tool(name, parameters);
  if (!tool) return invalid_request("'" + where + "' is strict, but " + tool.message(), "tools");
  return std::nullopt;
}

namespace {

// vLLM's guided_regex: the whole output matches the pattern.
std::optional<ApiError> read_regex(const RequestJson& value, const std::string& param,
                                   OpenAiRequest& out) {
  if (!value.is_string()) return type_error(param, "a string", value);
  Result<JsonGrammar> grammar = compile_regex(value.get<std::string>());
  if (!grammar) return invalid_request("'" + param + "': " + grammar.message(), param);
  out.constraint = OutputConstraintKind::kRegex;
  out.constraint_source = value.get<std::string>();
  return std::nullopt;
}

// OpenAI's response_format: text, json_object, or json_schema {name, schema, strict}.
std::optional<ApiError> read_response_format(const RequestJson& format, OpenAiRequest& out) {
  if (!format.is_object()) return type_error("response_format", "an object", format);
  const auto type = format.find("type");
  if (type == format.end() || !type->is_string())
    return invalid_request("'response_format.type' must be a string", "response_format");
  const std::string name = type->get<std::string>();
  if (name == "text") return std::nullopt;
  if (name == "json_object") {
    out.constraint = OutputConstraintKind::kJsonObject;
    return std::nullopt;
  }
  if (name != "json_schema") {
    return invalid_request("'response_format' type '" + name + "' is not supported",
                           "response_format");
  }
  const auto spec = format.find("json_schema");
  if (spec == format.end() || !spec->is_object())
    return invalid_request("'response_format.json_schema' must be an object", "response_format");
  if (auto n = spec->find("name"); n != spec->end() && !n->is_string())
    return type_error("response_format.json_schema.name", "a string", *n);
  if (auto strict = spec->find("strict");
      strict != spec->end() && !strict->is_null() && !strict->is_boolean())
    return type_error("response_format.json_schema.strict", "a boolean", *strict);
  const auto schema = spec->find("schema");
  if (schema == spec->end())
    return invalid_request("'response_format.json_schema.schema' is required", "response_format");
  return read_schema(*schema, "response_format.json_schema.schema", out);
}

// vLLM's structured_outputs {choice | json | regex}; other constraint kinds are refused.
std::optional<ApiError> read_structured_outputs(const RequestJson& structured, OpenAiRequest& out) {
  if (!structured.is_object()) return type_error("structured_outputs", "an object", structured);
  for (auto it = structured.begin(); it != structured.end(); ++it) {
    if (it.value().is_null()) continue;
    if (it.key() == "choice") {
      if (auto error = read_choices(it.value(), "structured_outputs", out.guided_choice))
        return error;
    } else if (it.key() == "json") {
      if (auto error = read_schema(it.value(), "structured_outputs.json", out)) return error;
    } else if (it.key() == "regex") {
      if (auto error = read_regex(it.value(), "structured_outputs.regex", out)) return error;
    } else {
      return invalid_request("'structured_outputs." + it.key() + "' is not supported",
                             "structured_outputs");
    }
  }
  return std::nullopt;
}

// vLLM's guided_choice / guided_json / guided_regex and their newer spelling
// structured_outputs, and OpenAI's response_format; grammar constraints are refused rather than
// silently ignored.
std::optional<ApiError> read_constraints(const RequestReader& reader, OpenAiRequest& out) {
  if (reader.find("guided_grammar") != nullptr)
    return invalid_request("'guided_grammar' is not supported", "guided_grammar");
  if (const RequestJson* pattern = reader.find("guided_regex")) {
    if (auto error = read_regex(*pattern, "guided_regex", out)) return error;
  }
  if (const RequestJson* choice = reader.find("guided_choice")) {
    if (auto error = read_choices(*choice, "guided_choice", out.guided_choice)) return error;
  } else if (const RequestJson* structured = reader.find("structured_outputs")) {
    if (auto error = read_structured_outputs(*structured, out)) return error;
  }
  if (const RequestJson* schema = reader.find("guided_json")) {
    if (auto error = read_schema(*schema, "guided_json", out)) return error;
  }
  if (const RequestJson* format = reader.find("response_format")) {
    if (auto error = read_response_format(*format, out)) return error;
  }
  const bool forced_tool =
      out.tool_choice == ToolChoice::kRequired || out.tool_choice == ToolChoice::kNamed;
  if (!out.guided_choice.empty() && forced_tool) {
    return invalid_request("'guided_choice' cannot be combined with a forced 'tool_choice'",
                           "guided_choice");
  }
  if (out.constraint != OutputConstraintKind::kNone && forced_tool) {
    return invalid_request("'response_format' cannot be combined with a forced 'tool_choice'",
                           "response_format");
  }
  if (out.constraint != OutputConstraintKind::kNone && !out.guided_choice.empty()) {
    return invalid_request("'guided_choice' cannot be combined with a JSON output format",
                           "guided_choice");
  }
  return std::nullopt;
}

std::optional<ApiError> read_stream(const RequestReader& reader, OpenAiRequest& out) {
  if (auto error = reader.boolean("stream", out.stream)) return error;
  const RequestJson* options = reader.find("stream_options");
  if (options == nullptr) return std::nullopt;
  if (!out.stream) {
    return invalid_request("'stream_options' is only allowed when 'stream' is true",
                           "stream_options");
  }
  if (!options->is_object()) return type_error("stream_options", "an object", *options);
  auto usage = options->find("include_usage");
  if (usage == options->end() || usage->is_null()) return std::nullopt;
  if (!usage->is_boolean()) return type_error("stream_options.include_usage", "a boolean", *usage);
  out.include_usage = usage->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> read_lengths(const RequestReader& reader, OpenAiRequest& out) {
  std::optional<int64_t> n, max_tokens, max_completion_tokens;
  if (auto error = reader.integer("n", 1, 16, n)) return error;
  if (n) out.n = static_cast<uint32_t>(*n);
  constexpr int64_t kMax = std::numeric_limits<uint32_t>::max();
  if (auto error = reader.integer("max_tokens", 1, kMax, max_tokens)) return error;
  if (auto error = reader.integer("max_completion_tokens", 1, kMax, max_completion_tokens)) {
    return error;
  }
  // max_completion_tokens is OpenAI's newer name; it wins when both are given.
  if (max_completion_tokens) max_tokens = max_completion_tokens;
  if (max_tokens) out.max_tokens = static_cast<uint32_t>(*max_tokens);
  return std::nullopt;
}

std::optional<ApiError> read_sampling(const RequestReader& reader, size_t vocab_size,
                                      OpenAiRequest& out) {
  if (auto error = reader.number("temperature", {0, 2}, out.temperature)) return error;
  if (auto error = reader.number("top_p", {0, 1, true}, out.top_p)) return error;
  std::optional<int64_t> top_k, seed;
  if (auto error = reader.integer("top_k", -1, std::numeric_limits<int32_t>::max(), top_k)) {
    return error;
  }
  if (top_k) out.top_k = static_cast<int32_t>(*top_k);
  if (auto error = reader.number("min_p", {0, 1}, out.min_p)) return error;
  if (auto error = reader.number("presence_penalty", {-2, 2}, out.presence_penalty)) return error;
  if (auto error = reader.number("frequency_penalty", {-2, 2}, out.frequency_penalty)) {
    return error;
  }
  if (auto error = reader.number("repetition_penalty", {0, kInf, true}, out.repetition_penalty)) {
    return error;
  }
  if (auto error = reader.integer("seed", std::numeric_limits<int64_t>::min(),
                                  std::numeric_limits<int64_t>::max(), seed)) {
    return error;
  }
  if (seed) out.seed = static_cast<uint64_t>(*seed);
  std::optional<int64_t> speculative;
  if (auto error = reader.integer("speculative_tokens", 0, 3, speculative)) return error;
  if (speculative) out.speculative_tokens = static_cast<uint32_t>(*speculative);
  if (auto error = reader.strings("stop", 4, out.stop)) return error;
  if (auto error = reader.token_ids("stop_token_ids", vocab_size, out.stop_token_ids)) {
    return error;
  }
  if (auto error = read_logit_bias(reader, vocab_size, out)) return error;
  return reader.boolean("ignore_eos", out.ignore_eos);
}

// vLLM's prompt_logprobs on chat: scores of the rendered prompt's tokens, returned once per
// response (all choices share the prompt); like vLLM, not with streaming.
std::optional<ApiError> read_chat_prompt_logprobs(const RequestReader& reader, OpenAiRequest& out) {
  std::optional<int64_t> prompt_logprobs;
  if (auto error = reader.integer("prompt_logprobs", 0, 20, prompt_logprobs)) return error;
  if (!prompt_logprobs) return std::nullopt;
  if (out.stream) {
    return invalid_request("'prompt_logprobs' is not available when 'stream' is true",
                           "prompt_logprobs");
  }
  out.prompt_logprobs = static_cast<uint32_t>(*prompt_logprobs);
  return std::nullopt;
}

// Every member any endpoint reads; others are skipped while parsing, never built.
const std::set<std::string, std::less<>> kKnownMembers = {"model",
                                                          "messages",
                                                          "tools",
                                                          "tool_choice",
                                                          "parallel_tool_calls",
                                                          "logprobs",
                                                          "top_logprobs",
                                                          "thinking",
                                                          "chat_template_kwargs",
                                                          "enable_thinking",
                                                          "reasoning_effort",
                                                          "task",
                                                          "dsml_replay",
                                                          "prompt",
                                                          "echo",
                                                          "prompt_logprobs",
                                                          "suffix",
                                                          "stream",
                                                          "stream_options",
                                                          "n",
                                                          "max_tokens",
                                                          "max_completion_tokens",
                                                          "temperature",
                                                          "top_p",
                                                          "top_k",
                                                          "min_p",
                                                          "presence_penalty",
                                                          "frequency_penalty",
                                                          "repetition_penalty",
                                                          "seed",
                                                          "speculative_tokens",
                                                          "stop",
                                                          "stop_token_ids",
                                                          "logit_bias",
                                                          "ignore_eos",
                                                          "guided_choice",
                                                          "structured_outputs",
                                                          "guided_json",
                                                          "guided_regex",
                                                          "guided_grammar",
                                                          "response_format",
                                                          "user"};

}  // namespace

std::optional<ApiError> read_schema_constraint(const RequestJson& schema, const std::string& param,
                                               OpenAiRequest& out) {
  return read_schema(schema, param, out);
}

std::optional<ApiError> parse_openai_request(Endpoint endpoint, std::string_view body,
                                             size_t vocab_size, OpenAiRequest& out) {
  out = OpenAiRequest();
  out.endpoint = endpoint;
  JsonLimits limits;
  // A bias for every token of the vocabulary is a legitimate (if large) request.
  limits.member_object_keys["logit_bias"] = vocab_size;
  RequestJson json;
  if (auto error = parse_request_json(body, limits, kKnownMembers, json)) return error;
  if (!json.is_object()) return invalid_request("the request body must be a JSON object");
  const RequestReader reader(json);
  if (reader.find("model") == nullptr) {
    return invalid_request("'model' is a required property", "model");
  }
  if (auto error = reader.string("model", out.model)) return error;
  if (endpoint == Endpoint::kChat) {
    if (auto error = read_chat_members(reader, out)) return error;
  } else {
    if (auto error = read_completions_members(reader, vocab_size, out)) return error;
  }
  if (auto error = read_stream(reader, out)) return error;
  if (endpoint == Endpoint::kChat) {
    if (auto error = read_chat_prompt_logprobs(reader, out)) return error;
  }
  if (auto error = read_lengths(reader, out)) return error;
  if (auto error = read_sampling(reader, vocab_size, out)) return error;
  if (auto error = read_constraints(reader, out)) return error;
  return reader.string("user", out.user);
}

}  // namespace v4::router
