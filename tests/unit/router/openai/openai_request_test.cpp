// OpenAI request parsing: every member's type and range errors name the member, and valid
// requests fill every field.
#include "router/openai/openai_request.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>

namespace v4::router {
namespace {

using Json = nlohmann::json;
constexpr size_t kVocab = 1000;

const Json kChat = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
const Json kCompletions = {{"model", "m"}, {"prompt", "hi"}};
const Json kTool = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};

std::optional<ApiError> parse(Endpoint endpoint, const std::string& body, OpenAiRequest& out) {
  return parse_openai_request(endpoint, body, kVocab, out);
}

OpenAiRequest parse_ok(Endpoint endpoint, const Json& body) {
  OpenAiRequest out;
  std::optional<ApiError> error = parse(endpoint, body.dump(), out);
  EXPECT_FALSE(error.has_value()) << body.dump() << ": " << (error ? error->message : "");
  return out;
}

struct BadCase {
  Endpoint endpoint;
  Json patch;  // merged into the endpoint's valid body; a null member is removed
  std::string param;
};

Json with(Json body, const Json& patch) {
  for (const auto& [key, value] : patch.items()) {
    if (value.is_null()) {
      body.erase(key);
    } else {
      body[key] = value;
    }
  }
  return body;
}

void expect_rejected(const BadCase& c) {
  const Json body = with(c.endpoint == Endpoint::kChat ? kChat : kCompletions, c.patch);
  SCOPED_TRACE(body.dump());
  OpenAiRequest out;
  std::optional<ApiError> error = parse(c.endpoint, body.dump(), out);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, 400);
  EXPECT_EQ(error->type, "invalid_request_error");
  EXPECT_EQ(error->param, c.param) << error->message;
  EXPECT_NE(error->message.find(c.param.substr(0, c.param.find('.'))), std::string::npos)
      << error->message;
}

TEST(OpenAiRequest, InvalidJsonAndNonObjectBodies) {
  OpenAiRequest out;
  for (const char* body : {"{", "", "{\"model\": }", "{\"model\": \"m\"} x", "\"\xff\""}) {
    std::optional<ApiError> error = parse(Endpoint::kChat, body, out);
    ASSERT_TRUE(error.has_value()) << body;
    EXPECT_EQ(error->status, 400);
    EXPECT_TRUE(error->message.starts_with("invalid JSON")) << error->message;
    EXPECT_EQ(error->code, "");
    EXPECT_EQ(error->param, "");
  }
  for (const char* body : {"[]", "5", "null"}) {
    std::optional<ApiError> error = parse(Endpoint::kChat, body, out);
    ASSERT_TRUE(error.has_value()) << body;
    EXPECT_EQ(error->status, 400);
  }
}

TEST(OpenAiRequest, DeepNestingIsRefusedBeforeParsing) {
  auto nested = [](int depth) {
    std::string body = R"({"model": "m", "messages": [{"role": "user", "content": "[{\""}], "x": )";
    body += std::string(depth, '[') + std::string(depth, ']') + "}";
    return body;
  };
  OpenAiRequest out;
  // The root object is one level; brackets inside strings do not count.
  EXPECT_FALSE(parse(Endpoint::kChat, nested(127), out).has_value());
  EXPECT_TRUE(parse(Endpoint::kChat, nested(128), out).has_value());
  std::optional<ApiError> error = parse(Endpoint::kChat, nested(100000), out);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, 400);
  EXPECT_NE(error->message.find("nests deeper"), std::string::npos);
}

TEST(OpenAiRequest, RangeMessagesAreOpenAiLike) {
  OpenAiRequest out;
  std::optional<ApiError> error = parse(Endpoint::kChat, with(kChat, {{"n", 0}}).dump(), out);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->message, "'n' must be between 1 and 16, got 0");
  error = parse(Endpoint::kChat, with(kChat, {{"max_tokens", -5}}).dump(), out);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->param, "max_tokens");
  EXPECT_NE(error->message.find("got -5"), std::string::npos);
  error = parse(Endpoint::kChat, with(kChat, {{"temperature", "hot"}}).dump(), out);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->message, "'temperature' must be a number, got a string");
}

TEST(OpenAiRequest, EveryBadMemberIsNamed) {
  const Endpoint chat = Endpoint::kChat, text = Endpoint::kCompletions;
  const std::vector<BadCase> cases = {
      {chat, {{"model", nullptr}}, "model"},
      {chat, {{"model", 5}}, "model"},
      {chat, {{"messages", nullptr}}, "messages"},
      {chat, {{"messages", "hi"}}, "messages"},
      {chat, {{"messages", Json::array()}}, "messages"},
      {chat, {{"messages", {{{"role", 1}}}}}, "messages"},
      {chat, {{"messages", {{{"role", "user"}, {"content", 5}}}}}, "messages"},
      {chat, {{"messages", {{{"role", "robot"}, {"content", "x"}}}}}, "messages"},
      {text, {{"prompt", nullptr}}, "prompt"},
      {text, {{"prompt", 5}}, "prompt"},
      {text, {{"prompt", Json::array()}}, "prompt"},
      {text, {{"prompt", {1, "a"}}}, "prompt"},
      {text, {{"prompt", {"a", 1}}}, "prompt"},
      {text, {{"prompt", {Json::array()}}}, "prompt"},
      {text, {{"prompt", {{1, -1}}}}, "prompt"},
      {text, {{"prompt", {kVocab}}}, "prompt"},
      {text, {{"prompt", {{{"a", 1}}}}}, "prompt"},
      {chat, {{"n", 0}}, "n"},
      {chat, {{"n", 17}}, "n"},
      {chat, {{"n", "2"}}, "n"},
      {chat, {{"n", 1.5}}, "n"},
      {chat, {{"max_tokens", 0}}, "max_tokens"},
      {chat, {{"max_tokens", -5}}, "max_tokens"},
      {chat, {{"max_tokens", "10"}}, "max_tokens"},
      {chat, {{"max_tokens", 2.5}}, "max_tokens"},
      {chat, {{"max_completion_tokens", 0}}, "max_completion_tokens"},
      {text, {{"max_tokens", 0}}, "max_tokens"},
      {chat, {{"temperature", -0.1}}, "temperature"},
      {chat, {{"temperature", 2.01}}, "temperature"},
      {chat, {{"temperature", "1"}}, "temperature"},
      {chat, {{"top_p", 0}}, "top_p"},
      {chat, {{"top_p", 1.1}}, "top_p"},
      {chat, {{"top_k", -2}}, "top_k"},
      {chat, {{"top_k", 1.5}}, "top_k"},
      {chat, {{"min_p", -0.1}}, "min_p"},
      {chat, {{"min_p", 1.1}}, "min_p"},
      {chat, {{"presence_penalty", 2.5}}, "presence_penalty"},
      {chat, {{"frequency_penalty", -3}}, "frequency_penalty"},
      {chat, {{"repetition_penalty", 0}}, "repetition_penalty"},
      {chat, {{"repetition_penalty", -1}}, "repetition_penalty"},
      {chat, {{"seed", "1"}}, "seed"},
      {chat, {{"seed", 1.5}}, "seed"},
      {chat, {{"stop", 5}}, "stop"},
      {chat, {{"stop", {"a", 1}}}, "stop"},
      {chat, {{"stop", {"a", "b", "c", "d", "e"}}}, "stop"},
      {chat, {{"stop", ""}}, "stop"},
      {chat, {{"stop", {"a", ""}}}, "stop"},
      {chat, {{"stop_token_ids", "x"}}, "stop_token_ids"},
      {chat, {{"stop_token_ids", {kVocab}}}, "stop_token_ids"},
      {chat, {{"stop_token_ids", {-1}}}, "stop_token_ids"},
      {chat, {{"logit_bias", Json::array()}}, "logit_bias"},
      {chat, {{"logit_bias", {{"abc", 1}}}}, "logit_bias"},
      {chat, {{"logit_bias", {{"-1", 1}}}}, "logit_bias"},
      {chat, {{"logit_bias", {{"1000", 1}}}}, "logit_bias"},
      {chat, {{"logit_bias", {{"5", 101}}}}, "logit_bias"},
      {chat, {{"logit_bias", {{"5", "x"}}}}, "logit_bias"},
      {chat, {{"logprobs", 1}}, "logprobs"},
      {chat, {{"logprobs", true}, {"top_logprobs", 21}}, "top_logprobs"},
      {chat, {{"logprobs", true}, {"top_logprobs", -1}}, "top_logprobs"},
      {chat, {{"top_logprobs", 2}}, "top_logprobs"},
      {text, {{"logprobs", 6}}, "logprobs"},
      {text, {{"logprobs", true}}, "logprobs"},
      {chat, {{"stream", "yes"}}, "stream"},
      {chat, {{"stream_options", {{"include_usage", true}}}}, "stream_options"},
      {chat, {{"stream", true}, {"stream_options", 5}}, "stream_options"},
      {chat,
       {{"stream", true}, {"stream_options", {{"include_usage", 1}}}},
       "stream_options.include_usage"},
      {chat, {{"tools", "x"}}, "tools"},
      {chat, {{"tools", {5}}}, "tools"},
      {chat, {{"tools", {{{"type", "function"}}}}}, "tools"},
      {chat, {{"tools", {{{"type", "web"}, {"function", {{"name", "a"}}}}}}}, "tools"},
      {chat, {{"tools", {{{"type", "function"}, {"function", {{"name", "a b"}}}}}}}, "tools"},
      {chat, {{"tools", {{{"type", "function"}, {"function", {{"name", "a\">"}}}}}}}, "tools"},
      {chat,
       {{"tools", {{{"type", "function"}, {"function", {{"name", "a"}, {"parameters", 1}}}}}}},
       "tools"},
      {chat, {{"tools", {kTool}}, {"tool_choice", "any"}}, "tool_choice"},
      {chat, {{"tools", {kTool}}, {"tool_choice", 5}}, "tool_choice"},
      {chat,
       {{"tools", {kTool}}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "x"}}}}}},
       "tool_choice"},
      {chat, {{"tools", {kTool}}, {"tool_choice", {{"type", "function"}}}}, "tool_choice"},
      {chat, {{"tool_choice", "required"}}, "tool_choice"},
      {chat, {{"tool_choice", "auto"}}, "tool_choice"},
      {chat, {{"parallel_tool_calls", "no"}}, "parallel_tool_calls"},
      {chat, {{"guided_choice", Json::array()}}, "guided_choice"},
      {chat, {{"guided_choice", "yes"}}, "guided_choice"},
      {chat, {{"guided_choice", {"yes", ""}}}, "guided_choice"},
      {chat,
       {{"guided_choice", {"a"}}, {"tools", {kTool}}, {"tool_choice", "required"}},
       "guided_choice"},
      {chat, {{"structured_outputs", {{"grammar", "root ::= x"}}}}, "structured_outputs"},
      {chat, {{"structured_outputs", {{"regex", "(?=a)"}}}}, "structured_outputs.regex"},
      {chat, {{"structured_outputs", {{"json", 3}}}}, "structured_outputs.json"},
      {chat, {{"structured_outputs", {{"choice", {1}}}}}, "structured_outputs"},
      {chat, {{"response_format", {{"type", "yaml"}}}}, "response_format"},
      {chat, {{"response_format", {{"type", "json_schema"}}}}, "response_format"},
      {chat,
       {{"response_format",
         {{"type", "json_schema"},
          {"json_schema", {{"name", "x"}, {"schema", {{"type", "string"}, {"pattern", "a"}}}}}}}},
       "response_format.json_schema.schema"},
      {chat, {{"guided_json", {{"type", "string"}, {"format", "date"}}}}, "guided_json"},
      {chat, {{"guided_regex", "a{2,1}"}}, "guided_regex"},
      {chat, {{"guided_regex", 5}}, "guided_regex"},
      {chat, {{"guided_grammar", "root ::= x"}}, "guided_grammar"},
      {chat,
       {{"response_format", {{"type", "json_object"}}},
        {"tools", {kTool}},
        {"tool_choice", "required"}},
       "response_format"},
      {chat, {{"ignore_eos", 1}}, "ignore_eos"},
      {text, {{"echo", "x"}}, "echo"},
      {text, {{"prompt_logprobs", 21}}, "prompt_logprobs"},
      {text, {{"prompt_logprobs", -1}}, "prompt_logprobs"},
      {text, {{"prompt_logprobs", true}}, "prompt_logprobs"},
      {text, {{"suffix", "x"}}, "suffix"},
      {chat, {{"thinking", "yes"}}, "thinking"},
      {chat, {{"chat_template_kwargs", 5}}, "chat_template_kwargs"},
      {chat, {{"chat_template_kwargs", {{"thinking", "x"}}}}, "chat_template_kwargs.thinking"},
      {chat, {{"enable_thinking", "x"}}, "enable_thinking"},
      {chat, {{"reasoning_effort", 5}}, "reasoning_effort"},
      {chat, {{"user", 5}}, "user"},
  };
  for (const BadCase& c : cases) expect_rejected(c);
}

TEST(OpenAiRequest, ChatMembersAreRead) {
  const OpenAiRequest r =
      parse_ok(Endpoint::kChat, with(kChat, {{"n", 3},
                                             {"max_completion_tokens", 50},
                                             {"max_tokens", 10},
                                             {"temperature", 0},
                                             {"top_p", 0.9},
                                             {"top_k", 40},
                                             {"min_p", 0.05},
                                             {"presence_penalty", -2},
                                             {"frequency_penalty", 2},
                                             {"repetition_penalty", 1.1},
                                             {"seed", -7},
                                             {"stop", {"a", "bb"}},
                                             {"stop_token_ids", {3, 4}},
                                             {"logit_bias", {{"12", 5.5}, {"0", -100}}},
                                             {"logprobs", true},
                                             {"top_logprobs", 20},
                                             {"stream", true},
                                             {"stream_options", {{"include_usage", true}}},
                                             {"ignore_eos", true},
                                             {"user", "u1"},
                                             {"tools", {kTool}},
                                             {"parallel_tool_calls", false},
                                             {"reasoning_effort", "max"},
                                             {"thinking", {{"type", "enabled"}}}}));
  EXPECT_EQ(r.endpoint, Endpoint::kChat);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.chat.messages.size(), 1u);
  EXPECT_EQ(r.chat.messages[0].content, "hi");
  EXPECT_TRUE(r.chat.thinking);
  EXPECT_EQ(r.chat.reasoning_effort, "max");
  ASSERT_EQ(r.chat.tools.size(), 1u);
  EXPECT_EQ(r.tool_choice, ToolChoice::kAuto);  // tools given, no tool_choice
  EXPECT_FALSE(r.parallel_tool_calls);
  EXPECT_EQ(r.n, 3u);
  EXPECT_EQ(r.max_tokens, 50u);  // max_completion_tokens wins
  EXPECT_EQ(r.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.top_p, 0.9f);
  EXPECT_EQ(r.top_k, 40);
  EXPECT_FLOAT_EQ(r.min_p, 0.05f);
  EXPECT_FLOAT_EQ(r.presence_penalty, -2.0f);
  EXPECT_FLOAT_EQ(r.frequency_penalty, 2.0f);
  EXPECT_FLOAT_EQ(r.repetition_penalty, 1.1f);
  EXPECT_EQ(r.seed, static_cast<uint64_t>(int64_t{-7}));
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "bb"}));
  EXPECT_EQ(r.stop_token_ids, (std::vector<int32_t>{3, 4}));
  std::vector<std::pair<int32_t, float>> bias = r.logit_bias;
  std::sort(bias.begin(), bias.end());
  EXPECT_EQ(bias, (std::vector<std::pair<int32_t, float>>{{0, -100.0f}, {12, 5.5f}}));
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 20u);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.ignore_eos);
  EXPECT_EQ(r.user, "u1");
}

TEST(OpenAiRequest, DefaultsAndNullMembers) {
  const OpenAiRequest r = parse_ok(Endpoint::kChat, kChat);
  EXPECT_EQ(r.n, 1u);
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_EQ(r.temperature, 1.0f);
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_EQ(r.tool_choice, ToolChoice::kNone);  // no tools
  EXPECT_FALSE(r.chat.thinking);
  EXPECT_FALSE(r.stream);

  Json nulls = kChat;
  for (const char* key : {"n", "max_tokens", "temperature", "stop", "seed", "tools", "tool_choice",
                          "logprobs", "stream_options", "logit_bias", "unknown"}) {
    nulls[key] = nullptr;
  }
  nulls["unknown_member"] = {{"ignored", true}};
  const OpenAiRequest n = parse_ok(Endpoint::kChat, nulls);
  EXPECT_EQ(n.n, 1u);
  EXPECT_TRUE(n.stop.empty());
}

TEST(OpenAiRequest, ToolChoiceForms) {
  const Json tools = {kTool, {{"type", "function"}, {"function", {{"name", "now"}}}}};
  EXPECT_EQ(parse_ok(Endpoint::kChat, with(kChat, {{"tools", tools}, {"tool_choice", "none"}}))
                .tool_choice,
            ToolChoice::kNone);
  EXPECT_EQ(parse_ok(Endpoint::kChat, with(kChat, {{"tools", tools}, {"tool_choice", "required"}}))
                .tool_choice,
            ToolChoice::kRequired);
  const OpenAiRequest named = parse_ok(
      Endpoint::kChat,
      with(kChat, {{"tools", tools},
                   {"tool_choice", {{"type", "function"}, {"function", {{"name", "now"}}}}}}));
  EXPECT_EQ(named.tool_choice, ToolChoice::kNamed);
  EXPECT_EQ(named.tool_choice_name, "now");
  // "none" needs no tools.
  EXPECT_EQ(parse_ok(Endpoint::kChat, with(kChat, {{"tool_choice", "none"}})).tool_choice,
            ToolChoice::kNone);
}

// strict: true is counted (calls are enforced when every tool is strict) and its parameters
// are checked: what cannot be enforced is a 400 naming the keyword, as for response_format.
TEST(OpenAiRequest, StrictToolsAreCheckedAndCounted) {
  const Json strict = {
      {"type", "function"},
      {"function",
       {{"name", "f"},
        {"strict", true},
        {"parameters", {{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}}}}}}}};
  EXPECT_EQ(parse_ok(Endpoint::kChat, with(kChat, {{"tools", {kTool, strict}}})).strict_tools, 1u);
  EXPECT_EQ(parse_ok(Endpoint::kChat, with(kChat, {{"tools", {kTool}}})).strict_tools, 0u);
  Json unsupported = strict;
  unsupported["function"]["parameters"]["properties"]["a"]["pattern"] = "x";
  OpenAiRequest out;
  std::optional<ApiError> error =
      parse(Endpoint::kChat, with(kChat, {{"tools", {unsupported}}}).dump(), out);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, 400);
  EXPECT_EQ(error->param, "tools");
  EXPECT_NE(error->message.find("'pattern' is not supported"), std::string::npos) << error->message;
  unsupported["function"]["strict"] = false;  // not strict: accepted, as before
  EXPECT_EQ(parse_ok(Endpoint::kChat, with(kChat, {{"tools", {unsupported}}})).strict_tools, 0u);
  Json bad_flag = strict;
  bad_flag["function"]["strict"] = "yes";
  expect_rejected({Endpoint::kChat, {{"tools", {bad_flag}}}, "tools"});
}

TEST(OpenAiRequest, ThinkingSwitches) {
  EXPECT_TRUE(parse_ok(Endpoint::kChat, with(kChat, {{"thinking", true}})).chat.thinking);
  EXPECT_TRUE(
      parse_ok(Endpoint::kChat, with(kChat, {{"chat_template_kwargs", {{"thinking", true}}}}))
          .chat.thinking);
  EXPECT_TRUE(parse_ok(Endpoint::kChat,
                       with(kChat, {{"chat_template_kwargs", {{"enable_thinking", true}}}}))
                  .chat.thinking);
  EXPECT_TRUE(parse_ok(Endpoint::kChat, with(kChat, {{"enable_thinking", true}})).chat.thinking);
  // The explicit switch wins over the fallbacks.
  EXPECT_FALSE(
      parse_ok(Endpoint::kChat, with(kChat, {{"thinking", false}, {"enable_thinking", true}}))
          .chat.thinking);
}

TEST(OpenAiRequest, CompletionsPromptShapes) {
  const OpenAiRequest one = parse_ok(Endpoint::kCompletions, kCompletions);
  EXPECT_EQ(one.text_prompts, (std::vector<std::string>{"hi"}));
  EXPECT_TRUE(one.token_prompts.empty());
  const OpenAiRequest texts =
      parse_ok(Endpoint::kCompletions, with(kCompletions, {{"prompt", {"a", "b"}}}));
  EXPECT_EQ(texts.text_prompts, (std::vector<std::string>{"a", "b"}));
  const OpenAiRequest ids =
      parse_ok(Endpoint::kCompletions, with(kCompletions, {{"prompt", {1, 2, 999}}}));
  ASSERT_EQ(ids.token_prompts.size(), 1u);
  EXPECT_EQ(ids.token_prompts[0], (std::vector<int32_t>{1, 2, 999}));
  const OpenAiRequest lists =
      parse_ok(Endpoint::kCompletions, with(kCompletions, {{"prompt", {{1}, {2, 3}}}}));
  EXPECT_EQ(lists.token_prompts, (std::vector<std::vector<int32_t>>{{1}, {2, 3}}));
  const OpenAiRequest legacy =
      parse_ok(Endpoint::kCompletions,
               with(kCompletions, {{"echo", true}, {"logprobs", 0}, {"suffix", nullptr}}));
  EXPECT_TRUE(legacy.echo);
  EXPECT_EQ(legacy.completion_logprobs, 0u);
  EXPECT_FALSE(legacy.prompt_logprobs);
  EXPECT_EQ(parse_ok(Endpoint::kCompletions, with(kCompletions, {{"prompt_logprobs", 20}}))
                .prompt_logprobs,
            20u);
}

TEST(OpenAiRequest, GuidedChoiceSpellings) {
  EXPECT_EQ(
      parse_ok(Endpoint::kChat, with(kChat, {{"guided_choice", {"yes", "no"}}})).guided_choice,
      (std::vector<std::string>{"yes", "no"}));
  EXPECT_EQ(parse_ok(Endpoint::kChat, with(kChat, {{"structured_outputs", {{"choice", {"a"}}}}}))
                .guided_choice,
            (std::vector<std::string>{"a"}));
  EXPECT_TRUE(parse_ok(Endpoint::kChat, with(kChat, {{"response_format", {{"type", "text"}}}}))
                  .guided_choice.empty());
}

TEST(OpenAiRequest, ResponseFormatsBecomeOutputConstraints) {
  EXPECT_EQ(
      parse_ok(Endpoint::kChat, with(kChat, {{"response_format", {{"type", "text"}}}})).constraint,
      OutputConstraintKind::kNone);
  EXPECT_EQ(parse_ok(Endpoint::kChat, with(kChat, {{"response_format", {{"type", "json_object"}}}}))
                .constraint,
            OutputConstraintKind::kJsonObject);
  const Json schema = {{"type", "object"}, {"properties", {{"b", {{"type", "integer"}}}}}};
  const OpenAiRequest r = parse_ok(
      Endpoint::kChat,
      with(kChat, {{"response_format",
                    {{"type", "json_schema"},
                     {"json_schema", {{"name", "x"}, {"schema", schema}, {"strict", true}}}}}}));
  EXPECT_EQ(r.constraint, OutputConstraintKind::kJsonSchema);
  EXPECT_EQ(Json::parse(r.constraint_source), schema);
  const OpenAiRequest regex = parse_ok(Endpoint::kChat, with(kChat, {{"guided_regex", "a|b+"}}));
  EXPECT_EQ(regex.constraint, OutputConstraintKind::kRegex);
  EXPECT_EQ(regex.constraint_source, "a|b+");
  // vLLM's guided_json takes the schema as an object or as its JSON text.
  EXPECT_EQ(
      parse_ok(Endpoint::kChat, with(kChat, {{"guided_json", schema.dump()}})).constraint_source,
      r.constraint_source);
}

// Numbers beyond a member's range are refused with the member named, however far out: values
// beyond int64 and values that a float would turn into 0 or infinity included.
TEST(OpenAiRequest, OutOfRangeNumbersAreRefusedNotClamped) {
  const Endpoint chat = Endpoint::kChat, text = Endpoint::kCompletions;
  const std::vector<BadCase> cases = {
      {chat, {{"seed", 1e30}}, "seed"},
      {chat, {{"seed", -1e30}}, "seed"},
      {chat, {{"seed", 18446744073709551615ull}}, "seed"},
      {chat, {{"seed", 9223372036854775808.0}}, "seed"},
      {chat, {{"top_k", 1e30}}, "top_k"},
      {chat, {{"n", 1e30}}, "n"},
      {chat, {{"max_tokens", 1e30}}, "max_tokens"},
      {chat, {{"max_completion_tokens", 18446744073709551615ull}}, "max_completion_tokens"},
      {chat, {{"logprobs", true}, {"top_logprobs", 1e30}}, "top_logprobs"},
      {chat, {{"temperature", 1e30}}, "temperature"},
      {chat, {{"top_p", 1e-50}}, "top_p"},
      {chat, {{"min_p", -1e-50}}, "min_p"},
      {chat, {{"repetition_penalty", 1e300}}, "repetition_penalty"},
      {chat, {{"repetition_penalty", 1e-50}}, "repetition_penalty"},
      {chat, {{"presence_penalty", -1e30}}, "presence_penalty"},
      {chat, {{"frequency_penalty", 1e30}}, "frequency_penalty"},
      {chat, {{"logit_bias", {{"5", 1e30}}}}, "logit_bias"},
      {chat, {{"stop_token_ids", {1e30}}}, "stop_token_ids"},
      {chat, {{"stop_token_ids", {18446744073709551615ull}}}, "stop_token_ids"},
      {text, {{"prompt", {1, 1e30}}}, "prompt"},
      {text, {{"logprobs", 1e30}}, "logprobs"},
      {text, {{"prompt_logprobs", 1e30}}, "prompt_logprobs"},
  };
  for (const BadCase& c : cases) expect_rejected(c);
  OpenAiRequest out;
  ASSERT_TRUE(parse(chat, with(kChat, {{"seed", 1e30}}).dump(), out));
  EXPECT_EQ(parse(chat, with(kChat, {{"seed", 1e30}}).dump(), out)->message,
            "'seed' must be a 64-bit integer, got 1e+30");
  // The extremes themselves are fine.
  EXPECT_EQ(parse_ok(chat, with(kChat, {{"seed", INT64_MIN}})).seed,
            static_cast<uint64_t>(INT64_MIN));
  EXPECT_EQ(parse_ok(chat, with(kChat, {{"seed", INT64_MAX}})).seed,
            static_cast<uint64_t>(INT64_MAX));
}

// {"0": 1, "1": 1, ...} with `keys` members.
Json wide_object(size_t keys) {
  Json object = Json::object();
  for (size_t i = 0; i < keys; ++i) object[std::to_string(i)] = 1;
  return object;
}

// A body's cost must grow linearly with its size: a logit_bias over a whole DeepSeek vocabulary
// and an unknown member with 100k keys took about a minute when each key was checked against
// every earlier one.
TEST(OpenAiRequest, WideObjectsParseInLinearTime) {
  constexpr size_t kDeepSeekVocab = 129'280;
  const std::string body =
      with(kChat, {{"logit_bias", wide_object(kDeepSeekVocab)}, {"metadata", wide_object(100'000)}})
          .dump();
  OpenAiRequest out;
  const auto start = std::chrono::steady_clock::now();
  std::optional<ApiError> error = parse_openai_request(Endpoint::kChat, body, kDeepSeekVocab, out);
  // About 0.5 s in a release build; a quadratic parse took 49 s (the margin is for sanitizers).
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  ASSERT_FALSE(error) << error->message;
  EXPECT_EQ(out.logit_bias.size(), kDeepSeekVocab);
}

TEST(OpenAiRequest, ObjectKeysAndArrayItemsAreBounded) {
  Json tool = kTool;
  tool["function"]["parameters"] = {{"type", "object"}, {"properties", wide_object(1025)}};
  expect_rejected({Endpoint::kChat, {{"tools", {tool}}}, "tools"});
  tool["function"]["parameters"]["properties"] = wide_object(1024);
  parse_ok(Endpoint::kChat, with(kChat, {{"tools", {tool}}}));
  // logit_bias may name every token of the vocabulary, and no more (keys are distinct ids).
  EXPECT_EQ(parse_ok(Endpoint::kChat, with(kChat, {{"logit_bias", wide_object(kVocab)}}))
                .logit_bias.size(),
            kVocab);
  expect_rejected({Endpoint::kChat, {{"logit_bias", wide_object(kVocab + 1)}}, "logit_bias"});
  expect_rejected(
      {Endpoint::kCompletions, {{"prompt", std::vector<int>((1 << 20) + 1, 1)}}, "prompt"});
}

}  // namespace
}  // namespace v4::router
