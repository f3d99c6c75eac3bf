// From a parsed request to engine input: chat prompts in the DeepSeek-V4 layout (spec §5.8),
// tool_choice forcing (checked end to end through ChoiceOutput), completions prompts, the
// context-length check and the engine's sampling settings.
#include "router/openai/prompt_builder.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/chat/chat_encoder.h"
#include "model/grammar/dsml_tool_grammar.h"
#include "model/grammar/dsml_tool_matcher.h"
#include "router/openai/choice_output.h"
#include "tests/unit/common/deepseek_tokenizer.h"

namespace v4::router {
namespace {

using Json = nlohmann::json;
using test_support::DeepSeekTest;

const std::string kD = kDsmlText;
const std::string kBos = kBosText;

Json weather_tool() {
  return {
      {"type", "function"},
      {"function",
       {{"name", "get_weather"},
        {"description", "Weather of a city"},
        {"parameters", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}}}};
}

Json chat_body(Json extra = Json::object()) {
  Json body = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "Hello"}}}}};
  body.update(extra);
  return body;
}

EngineEvent event(int32_t token, EngineFinish finish = EngineFinish::kNone) {
  EngineEvent out;
  out.token = token;
  out.finish = finish;
  return out;
}

class PromptBuilderTest : public DeepSeekTest {
 protected:
  static OpenAiRequest parse(Endpoint endpoint, const Json& body) {
    OpenAiRequest request;
    std::optional<ApiError> error =
        parse_openai_request(endpoint, body.dump(), tok().vocab_size(), request);
    EXPECT_FALSE(error.has_value()) << (error ? error->message : "");
    return request;
  }
  static PreparedRequest prepare(Endpoint endpoint, const Json& body, uint32_t max_context = 4096) {
    PreparedRequest out;
    std::optional<ApiError> error = prepare_request(parse(endpoint, body), tok(), max_context, out);
    EXPECT_FALSE(error.has_value()) << (error ? error->message : "");
    return out;
  }
  static std::string text(const std::vector<int32_t>& ids) { return tok().decode(ids); }
  // chat_body()'s prompt, written out in the documented layout.
  static std::vector<int32_t> plain_prompt_ids() {
    return tok().encode(kBos + "<｜User｜>Hello<｜Assistant｜></think>", true);
  }
};

TEST_F(PromptBuilderTest, ChatPromptInTheOfficialLayout) {
  // An empty system message is put first; the user turn is followed by the open assistant
  // prefix, which closes thinking when it is off and opens it when on.
  PreparedRequest plain = prepare(Endpoint::kChat, chat_body());
  ASSERT_EQ(plain.prompts.size(), 1u);
  const std::string expected = kBos + "<｜User｜>Hello<｜Assistant｜></think>";
  EXPECT_EQ(plain.prompts[0].ids, tok().encode(expected, true));
  EXPECT_EQ(plain.prompts[0].ids.front(), tok().bos_id());
  EXPECT_TRUE(plain.chat);
  EXPECT_FALSE(plain.thinking);
  EXPECT_FALSE(plain.parse_tools);
  EXPECT_TRUE(plain.forced_output.empty());

  PreparedRequest thinking = prepare(Endpoint::kChat, chat_body({{"thinking", true}}));
  EXPECT_EQ(text(thinking.prompts[0].ids), kBos + "<｜User｜>Hello<｜Assistant｜><think>");
  EXPECT_TRUE(thinking.thinking);
  PreparedRequest kwargs =
      prepare(Endpoint::kChat, chat_body({{"chat_template_kwargs", {{"enable_thinking", true}}}}));
  EXPECT_TRUE(kwargs.thinking);
}

TEST_F(PromptBuilderTest, ToolChoiceDecidesToolsAndParsing) {
  PreparedRequest automatic = prepare(Endpoint::kChat, chat_body({{"tools", {weather_tool()}}}));
  EXPECT_TRUE(automatic.parse_tools);
  EXPECT_NE(text(automatic.prompts[0].ids).find("\"get_weather\""), std::string::npos);
  EXPECT_TRUE(automatic.forced_output.empty());

  PreparedRequest none =
      prepare(Endpoint::kChat, chat_body({{"tools", {weather_tool()}}, {"tool_choice", "none"}}));
  EXPECT_FALSE(none.parse_tools);
  EXPECT_EQ(text(none.prompts[0].ids).find("get_weather"), std::string::npos);
  EXPECT_EQ(none.prompts[0].ids, plain_prompt_ids());
}

TEST_F(PromptBuilderTest, NamedToolChoiceForcesTheInvokeOpening) {
  const Json named = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  PreparedRequest out =
      prepare(Endpoint::kChat, chat_body({{"tools", {weather_tool()}}, {"tool_choice", named}}));
  const std::string forced =
      "\n\n<" + kD + "tool_calls>\n<" + kD + "invoke name=\"get_weather\">\n";
  EXPECT_EQ(text(out.forced_output), forced);
  const std::vector<int32_t>& ids = out.prompts[0].ids;
  ASSERT_GE(ids.size(), out.forced_output.size());
  EXPECT_TRUE(std::equal(out.forced_output.begin(), out.forced_output.end(),
                         ids.end() - static_cast<std::ptrdiff_t>(out.forced_output.size())));
  EXPECT_TRUE(text(ids).ends_with("<｜Assistant｜></think>" + forced));

  // The model continues with the parameters: the output reader primed with the forced tokens
  // reports one call of the named tool.
  ChoiceOutputOptions options;
  options.parse_tools = out.parse_tools;
  options.forced_output = out.forced_output;
  options.stop = {"\n"};  // stop strings do not cut the forced tool-call block apart
  ChoiceOutput choice = ChoiceOutput::create(tok(), options).value();
  const std::string rest = "<" + kD + "parameter name=\"city\" string=\"true\">Oslo</" + kD +
                           "parameter>\n</" + kD + "invoke>\n</" + kD + "tool_calls>";
  std::string name, arguments;
  auto collect = [&](const ChoiceDelta& delta) {
    for (const ToolCallDelta& call : delta.tool_calls) {
      name += call.name;
      arguments += call.arguments;
    }
  };
  for (int32_t id : tok().encode(rest, true)) collect(choice.push(event(id)));
  collect(choice.push(event(tok().eos_id(), EngineFinish::kStop)));
  EXPECT_EQ(name, "get_weather");
  EXPECT_EQ(Json::parse(arguments), Json({{"city", "Oslo"}}));
  EXPECT_EQ(choice.content(), "");
  EXPECT_EQ(choice.finish_reason(), "tool_calls");
  EXPECT_EQ(choice.completion_tokens(), tok().encode(rest, true).size() + 1);
}

TEST_F(PromptBuilderTest, RequiredToolChoiceInThinkingModeClosesReasoningFirst) {
  PreparedRequest out = prepare(
      Endpoint::kChat,
      chat_body({{"tools", {weather_tool()}}, {"tool_choice", "required"}, {"thinking", true}}));
  EXPECT_TRUE(out.thinking);
  EXPECT_EQ(text(out.forced_output), "</think>\n\n<" + kD + "tool_calls>\n");
  EXPECT_TRUE(text(out.prompts[0].ids).ends_with("<think></think>\n\n<" + kD + "tool_calls>\n"));

  ChoiceOutputOptions options;
  options.thinking = out.thinking;
  options.parse_tools = out.parse_tools;
  options.forced_output = out.forced_output;
  ChoiceOutput choice = ChoiceOutput::create(tok(), options).value();
  const std::string rest = "<" + kD + "invoke name=\"get_weather\">\n<" + kD +
                           "parameter name=\"city\" string=\"true\">Rome</" + kD +
                           "parameter>\n</" + kD + "invoke>\n</" + kD + "tool_calls>";
  for (int32_t id : tok().encode(rest, true)) choice.push(event(id));
  choice.push(event(tok().eos_id(), EngineFinish::kStop));
  EXPECT_EQ(choice.reasoning(), "");
  EXPECT_EQ(choice.content(), "");
  ASSERT_EQ(choice.tool_calls().size(), 1u);
  EXPECT_EQ(Json::parse(choice.tool_calls()[0].arguments), Json({{"city", "Rome"}}));
}

TEST_F(PromptBuilderTest, CompletionsPrompts) {
  const std::string special_text = "a<｜end▁of▁sentence｜>b";
  PreparedRequest out =
      prepare(Endpoint::kCompletions,
              {{"model", "m"}, {"prompt", {"Hi there", special_text}}, {"echo", true}});
  ASSERT_EQ(out.prompts.size(), 2u);
  std::vector<int32_t> expected{tok().bos_id()};
  for (TokenId id : tok().encode("Hi there")) expected.push_back(id);
  EXPECT_EQ(out.prompts[0].ids, expected);
  EXPECT_EQ(out.prompts[0].echo_text, "Hi there");
  // Control-token spellings in a text prompt are plain text.
  const auto& second = out.prompts[1].ids;
  EXPECT_EQ(std::count(second.begin(), second.end(), tok().eos_id()), 0);
  EXPECT_EQ(text(second), kBos + special_text);
  EXPECT_FALSE(out.chat);

  const std::vector<int32_t> ids = tok().encode("token ids");
  PreparedRequest tokens =
      prepare(Endpoint::kCompletions, {{"model", "m"}, {"prompt", {ids, {5, 6}}}});
  ASSERT_EQ(tokens.prompts.size(), 2u);
  EXPECT_EQ(tokens.prompts[0].ids, ids);  // as given, no BOS added
  EXPECT_EQ(tokens.prompts[0].echo_text, "token ids");
  EXPECT_EQ(tokens.prompts[1].ids, (std::vector<int32_t>{5, 6}));
}

TEST_F(PromptBuilderTest, MaxTokensFillsOrChecksTheContext) {
  const Json body = {{"model", "m"}, {"prompt", {{1, 2, 3}, {4, 5, 6, 7, 8}}}};
  // Legacy completions default to 16 tokens (OpenAI, vLLM), less where the context is fuller.
  EXPECT_EQ(prepare(Endpoint::kCompletions, body, 100).sampling.max_tokens, 16u);
  PreparedRequest fill = prepare(Endpoint::kCompletions, body, 20);
  EXPECT_EQ(fill.sampling.max_tokens, 15u);  // the longest prompt decides
  Json limited = body;
  limited["max_tokens"] = 95;
  EXPECT_EQ(prepare(Endpoint::kCompletions, limited, 100).sampling.max_tokens, 95u);

  limited["max_tokens"] = 96;
  PreparedRequest out;
  std::optional<ApiError> error =
      prepare_request(parse(Endpoint::kCompletions, limited), tok(), 100, out);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, 400);
  EXPECT_EQ(error->code, "context_length_exceeded");
  EXPECT_EQ(error->param, "prompt");
  EXPECT_NE(error->message.find("maximum context length is 100 tokens"), std::string::npos);
  EXPECT_NE(error->message.find("101 tokens (5 in the prompt, 96 in the completion)"),
            std::string::npos);

  const OpenAiRequest chat = parse(Endpoint::kChat, chat_body());
  const size_t prompt_len = plain_prompt_ids().size();
  error = prepare_request(chat, tok(), static_cast<uint32_t>(prompt_len), out);
  ASSERT_TRUE(error.has_value());  // no room for a single output token
  EXPECT_EQ(error->param, "messages");
  EXPECT_EQ(error->code, "context_length_exceeded");
  EXPECT_FALSE(prepare_request(chat, tok(), static_cast<uint32_t>(prompt_len + 1), out));
  EXPECT_EQ(out.sampling.max_tokens, 1u);
  // Chat without max_tokens may fill the context.
  EXPECT_FALSE(prepare_request(chat, tok(), static_cast<uint32_t>(prompt_len + 100), out));
  EXPECT_EQ(out.sampling.max_tokens, 100u);
}

TEST_F(PromptBuilderTest, SamplingSettings) {
  PreparedRequest out = prepare(Endpoint::kChat, chat_body({{"temperature", 0},
                                                            {"top_p", 0.5},
                                                            {"top_k", -1},
                                                            {"min_p", 0.1},
                                                            {"seed", 42},
                                                            {"presence_penalty", 1.5},
                                                            {"frequency_penalty", -1},
                                                            {"repetition_penalty", 1.2},
                                                            {"stop_token_ids", {7}},
                                                            {"logit_bias", {{"11", -100}}},
                                                            {"logprobs", true},
                                                            {"top_logprobs", 3},
                                                            {"stop", "END"}}));
  const EngineSampling& s = out.sampling;
  EXPECT_EQ(s.temperature, 0.0f);
  EXPECT_FLOAT_EQ(s.top_p, 0.5f);
  EXPECT_EQ(s.top_k, 0);  // -1: off
  EXPECT_FLOAT_EQ(s.min_p, 0.1f);
  EXPECT_EQ(s.seed, 42u);
  EXPECT_FLOAT_EQ(s.presence_penalty, 1.5f);
  EXPECT_FLOAT_EQ(s.frequency_penalty, -1.0f);
  EXPECT_FLOAT_EQ(s.repetition_penalty, 1.2f);
  EXPECT_EQ(s.stop_token_ids, (std::vector<int32_t>{7, tok().eos_id()}));
  ASSERT_EQ(s.logit_bias.size(), 1u);
  EXPECT_EQ(s.logit_bias[0], (std::pair<int32_t, float>{11, -100.0f}));
  EXPECT_TRUE(s.logprobs);
  EXPECT_EQ(s.top_logprobs, 3u);
  EXPECT_EQ(out.stop, (std::vector<std::string>{"END"}));

  PreparedRequest defaults = prepare(Endpoint::kChat, chat_body({{"ignore_eos", true}}));
  EXPECT_TRUE(defaults.sampling.stop_token_ids.empty());
  EXPECT_EQ(defaults.sampling.seed, 0u);
  EXPECT_FALSE(defaults.sampling.logprobs);

  PreparedRequest legacy =
      prepare(Endpoint::kCompletions, {{"model", "m"}, {"prompt", "x"}, {"logprobs", 4}});
  EXPECT_TRUE(legacy.sampling.logprobs);
  EXPECT_EQ(legacy.sampling.top_logprobs, 4u);
  EXPECT_FALSE(legacy.sampling.prompt_logprobs);
  EXPECT_EQ(legacy.prompts[0].echo_start, 1u);  // the BOS in front of a text prompt

  // Echo with logprobs scores the prompt; prompt_logprobs asks for it alone or for more.
  PreparedRequest echo = prepare(
      Endpoint::kCompletions, {{"model", "m"}, {"prompt", "x"}, {"echo", true}, {"logprobs", 2}});
  EXPECT_EQ(echo.sampling.prompt_logprobs, 2u);
  PreparedRequest both = prepare(Endpoint::kCompletions, {{"model", "m"},
                                                          {"prompt", {5, 6}},
                                                          {"echo", true},
                                                          {"logprobs", 2},
                                                          {"prompt_logprobs", 7}});
  EXPECT_EQ(both.sampling.prompt_logprobs, 7u);
  EXPECT_EQ(both.prompts[0].echo_start, 0u);
  PreparedRequest alone =
      prepare(Endpoint::kCompletions, {{"model", "m"}, {"prompt", "x"}, {"prompt_logprobs", 0}});
  EXPECT_EQ(alone.sampling.prompt_logprobs, 0u);
  EXPECT_FALSE(alone.sampling.logprobs);
}

TEST_F(PromptBuilderTest, GuidedChoiceBecomesAllowedOutputs) {
  PreparedRequest out = prepare(Endpoint::kChat, chat_body({{"guided_choice", {"yes", "no way"}}}));
  ASSERT_EQ(out.sampling.allowed_outputs.size(), 2u);
  EXPECT_EQ(out.sampling.allowed_outputs[0], tok().encode("yes"));
  EXPECT_EQ(out.sampling.allowed_outputs[1], tok().encode("no way"));

  // In thinking mode the choice follows an immediate </think>, so it arrives as content.
  PreparedRequest thinking =
      prepare(Endpoint::kChat,
              chat_body({{"structured_outputs", {{"choice", {"yes"}}}}, {"thinking", true}}));
  ASSERT_EQ(thinking.sampling.allowed_outputs.size(), 1u);
  std::vector<int32_t> expected{*tok().special_token_id(kThinkEndText)};
  for (TokenId id : tok().encode("yes")) expected.push_back(id);
  EXPECT_EQ(thinking.sampling.allowed_outputs[0], expected);
}

// A JSON response format travels as the constraint, and a thinking request renders as a
// non-thinking one: the answer is the JSON, with no reasoning before it.
TEST_F(PromptBuilderTest, ResponseFormatSkipsReasoning) {
  const Json format = {{"type", "json_object"}};
  PreparedRequest thinking =
      prepare(Endpoint::kChat, chat_body({{"response_format", format}, {"thinking", true}}));
  PreparedRequest plain = prepare(Endpoint::kChat, chat_body({{"thinking", false}}));
  EXPECT_EQ(thinking.sampling.constraint, OutputConstraintKind::kJsonObject);
  EXPECT_FALSE(thinking.thinking);
  EXPECT_EQ(thinking.prompts[0].ids, plain.prompts[0].ids);
  EXPECT_EQ(plain.sampling.constraint, OutputConstraintKind::kNone);
}

Json strict_tool(Json tool) {
  tool["function"]["strict"] = true;
  return tool;
}

Json plan_tool() {
  return {{"type", "function"},
          {"function",
           {{"name", "plan"},
            {"strict", true},
            {"parameters",
             {{"type", "object"},
              {"properties",
               {{"steps", {{"type", "array"}, {"items", {{"type", "integer"}}}}},
                {"note", {{"type", "string"}}},
                {"mode", {{"enum", {"fast", "slow"}}}}}},
              {"required", {"steps"}}}}}}};
}

DsmlToolGrammar tool_grammar(const PreparedRequest& out) {
  EXPECT_EQ(out.sampling.constraint, OutputConstraintKind::kDsmlTools);
  Result<DsmlToolGrammar> g = compile_dsml_tool_grammar(out.sampling.constraint_source);
  EXPECT_TRUE(g) << g.message();
  return g ? *g : DsmlToolGrammar();
}

// Every tool strict: the calls travel as the DSML tool constraint, starting where the forced
// text leaves the output; the encoder's own rendering of calls (spec §5.8) is admitted.
TEST_F(PromptBuilderTest, StrictToolsTravelAsTheDsmlConstraint) {
  const Json tools = {strict_tool(weather_tool()), plan_tool()};
  const PreparedRequest required =
      prepare(Endpoint::kChat, chat_body({{"tools", tools}, {"tool_choice", "required"}}));
  const auto g = std::make_shared<const DsmlToolGrammar>(tool_grammar(required));
  EXPECT_EQ(g->start, DsmlStart::kBlock);
  EXPECT_EQ(g->marker_token, *tok().special_token_id(kDsmlText));
  ChatToolCall weather{"", "get_weather", R"({"city": "Paris"})", true};
  ChatToolCall plan{"", "plan", R"({"mode": "fast", "steps": [1, 2, 3], "note": "a </b>"})", true};
  const std::string block =
      *render_dsml_invoke(weather) + "\n" + *render_dsml_invoke(plan) + "\n</" + kD + "tool_calls>";
  EXPECT_TRUE(dsml_grammar_accepts(g, block, kD)) << block;
  ChatToolCall bad_value{"", "plan", R"({"steps": ["1"]})", true};
  ChatToolCall missing{"", "plan", R"({"mode": "slow"})", true};
  ChatToolCall unknown{"", "get_time", R"({})", true};
  for (const ChatToolCall& call : {bad_value, missing, unknown}) {
    EXPECT_FALSE(
        dsml_grammar_accepts(g, *render_dsml_invoke(call) + "\n</" + kD + "tool_calls>", kD))
        << call.arguments;
  }

  const Json named = {{"type", "function"}, {"function", {{"name", "plan"}}}};
  const PreparedRequest forced = prepare(
      Endpoint::kChat,
      chat_body({{"tools", tools}, {"tool_choice", named}, {"parallel_tool_calls", false}}));
  const DsmlToolGrammar named_grammar = tool_grammar(forced);
  EXPECT_EQ(named_grammar.start, DsmlStart::kInvoke);
  EXPECT_EQ(named_grammar.tools[static_cast<size_t>(named_grammar.start_tool)].name, "plan");
  EXPECT_EQ(named_grammar.max_calls, 1u);

  const PreparedRequest automatic =
      prepare(Endpoint::kChat, chat_body({{"tools", tools}, {"thinking", true}}));
  const DsmlToolGrammar auto_grammar = tool_grammar(automatic);
  EXPECT_EQ(auto_grammar.start, DsmlStart::kFree);
  EXPECT_TRUE(auto_grammar.reasoning);
  EXPECT_EQ(auto_grammar.reasoning_end_token, *tok().special_token_id(kThinkEndText));
}

// Some tool not strict, tool_choice none, or another constraint: nothing is enforced on calls.
TEST_F(PromptBuilderTest, StrictToolsOnlyWhenEveryToolIsStrict) {
  const PreparedRequest mixed =
      prepare(Endpoint::kChat,
              chat_body({{"tools", {weather_tool(), plan_tool()}}, {"tool_choice", "required"}}));
  EXPECT_EQ(mixed.sampling.constraint, OutputConstraintKind::kNone);
  const PreparedRequest none =
      prepare(Endpoint::kChat, chat_body({{"tools", {plan_tool()}}, {"tool_choice", "none"}}));
  EXPECT_EQ(none.sampling.constraint, OutputConstraintKind::kNone);
  const PreparedRequest json = prepare(
      Endpoint::kChat,
      chat_body({{"tools", {plan_tool()}}, {"response_format", {{"type", "json_object"}}}}));
  EXPECT_EQ(json.sampling.constraint, OutputConstraintKind::kJsonObject);
}

}  // namespace
}  // namespace v4::router
