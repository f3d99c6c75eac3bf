// Anthropic Messages request parsing: every bad member is a 400 whose message names it, no
// input crashes the parser, and a valid request renders exactly the DSML prompt of the
// equivalent OpenAI chat request (both go through DeepSeek-V4's encoder).
#include "router/anthropic/messages_request.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/chat/chat_encoder.h"

namespace v4::router {
namespace {

using Json = nlohmann::ordered_json;

const Json kWeatherSchema = {
    {"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}, {"required", {"city"}}};

Json base() {
  return {
      {"model", "m"}, {"max_tokens", 64}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
}

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

Json user(Json content) { return {{"role", "user"}, {"content", std::move(content)}}; }
Json assistant(Json content) { return {{"role", "assistant"}, {"content", std::move(content)}}; }

OpenAiRequest parse_ok(const Json& body, MessagesRoute route = MessagesRoute::kCreate) {
  OpenAiRequest out;
  std::optional<ApiError> error = parse_messages_request(route, body.dump(), out);
  EXPECT_FALSE(error.has_value()) << body.dump() << ": " << (error ? error->message : "");
  return out;
}

struct BadCase {
  Json patch;         // merged into base(); a null member is removed
  std::string field;  // the path the message must name
};

void expect_rejected(const BadCase& c, MessagesRoute route = MessagesRoute::kCreate) {
  const Json body = with(base(), c.patch);
  SCOPED_TRACE(body.dump());
  OpenAiRequest out;
  std::optional<ApiError> error = parse_messages_request(route, body.dump(), out);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, 400);
  EXPECT_EQ(error->type, "invalid_request_error");
  EXPECT_NE(error->message.find(c.field), std::string::npos) << error->message;
}

TEST(MessagesRequest, EveryBadMemberIsA400NamingIt) {
  const Json tool = {{"name", "get_weather"}, {"input_schema", kWeatherSchema}};
  const std::vector<BadCase> cases = {
      {{{"model", nullptr}}, "model"},
      {{{"model", 3}}, "model"},
      {{{"max_tokens", nullptr}}, "max_tokens"},
      {{{"max_tokens", 0}}, "max_tokens"},
      {{{"max_tokens", 1.5}}, "max_tokens"},
      {{{"max_tokens", "64"}}, "max_tokens"},
      {{{"max_tokens", 1e30}}, "max_tokens"},
      {{{"messages", nullptr}}, "messages"},
      {{{"messages", "hi"}}, "messages"},
      {{{"messages", Json::array()}}, "messages"},
      {{{"messages", {"hi"}}}, "messages.0"},
      {{{"messages", {{{"content", "hi"}}}}}, "messages.0.role"},
      {{{"messages", {{{"role", "system"}, {"content", "hi"}}}}}, "messages.0.role"},
      {{{"messages", {{{"role", "user"}}}}}, "messages.0.content"},
      {{{"messages", {user(3)}}}, "messages.0.content"},
      {{{"messages", {user(Json::array())}}}, "messages.0.content"},
      {{{"messages", {user({"text"})}}}, "messages.0.content.0"},
      {{{"messages", {user({{{"text", "x"}}})}}}, "messages.0.content.0.type"},
      {{{"messages", {user({{{"type", "text"}}})}}}, "messages.0.content.0.text"},
      {{{"messages", {user({{{"type", "text"}, {"text", 1}}})}}}, "messages.0.content.0.text"},
      {{{"messages", {user({{{"type", "image"}, {"source", Json::object()}}})}}},
       "messages.0.content.0: images are not supported"},
      {{{"messages", {user({{{"type", "document"}}})}}}, "messages.0.content.0"},
      {{{"messages", {user({{{"type", "audio"}}})}}}, "messages.0.content.0.type"},
      {{{"messages", {user({{{"type", "tool_use"}}})}}}, "messages.0.content.0.type"},
      {{{"messages", {user({{{"type", "tool_result"}}})}}}, "messages.0.content.0.tool_use_id"},
      {{{"messages", {user({{{"type", "tool_result"}, {"tool_use_id", "t"}, {"content", 5}}})}}},
       "messages.0.content.0.content"},
      {{{"messages",
         {user({{{"type", "tool_result"},
                 {"tool_use_id", "t"},
                 {"content", {{{"type", "image"}, {"source", Json::object()}}}}}})}}},
       "messages.0.content.0.content.0: images are not supported"},
      {{{"messages",
         {user({{{"type", "tool_result"}, {"tool_use_id", "t"}, {"is_error", "yes"}}})}}},
       "messages.0.content.0.is_error"},
      {{{"messages", {user("a"), assistant({{{"type", "tool_use"}, {"id", "t"}}}), user("b")}}},
       "messages.1.content.0.name"},
      {{{"messages",
         {user("a"),
          assistant({{{"type", "tool_use"}, {"id", "t"}, {"name", "bad name"}, {"input", {}}}}),
          user("b")}}},
       "messages.1.content.0.name"},
      {{{"messages",
         {user("a"),
          assistant({{{"type", "tool_use"}, {"id", "t"}, {"name", "f"}, {"input", "{}"}}}),
          user("b")}}},
       "messages.1.content.0.input"},
      {{{"messages", {user("a"), assistant({{{"type", "thinking"}}}), user("b")}}},
       "messages.1.content.0.thinking"},
      {{{"messages", {user("a"), assistant({{{"type", "tool_result"}}}), user("b")}}},
       "messages.1.content.0.type"},
      {{{"messages", {user("a"), assistant("prefill")}}}, "prefill"},
      {{{"system", 3}}, "system"},
      {{{"system", {{{"type", "image"}}}}}, "system.0: images are not supported"},
      {{{"system", {{{"type", "text"}}}}}, "system.0.text"},
      {{{"tools", Json::object()}}, "tools"},
      {{{"tools", {3}}}, "tools.0"},
      {{{"tools", {{{"input_schema", kWeatherSchema}}}}}, "tools.0.name"},
      {{{"tools", {{{"name", "a\"b"}, {"input_schema", kWeatherSchema}}}}}, "tools.0.name"},
      {{{"tools", {{{"name", "f"}}}}}, "tools.0.input_schema"},
      {{{"tools", {{{"name", "f"}, {"input_schema", "{}"}}}}}, "tools.0.input_schema"},
      {{{"tools", {{{"name", "f"}, {"input_schema", kWeatherSchema}, {"description", 1}}}}},
       "tools.0.description"},
      {{{"tools", {{{"type", "web_search_20250305"}, {"name", "web_search"}}}}}, "tools.0.type"},
      {{{"tool_choice", "auto"}}, "tool_choice"},
      {{{"tool_choice", {{"type", "any"}}}}, "tool_choice"},
      {{{"tools", {tool}}, {"tool_choice", {{"type", "sometimes"}}}}, "tool_choice.type"},
      {{{"tools", {tool}}, {"tool_choice", {{"type", "tool"}}}}, "name"},
      {{{"tools", {tool}}, {"tool_choice", {{"type", "tool"}, {"name", "other"}}}},
       "tool_choice.name"},
      {{{"tools", {tool}}, {"tool_choice", {{"type", "auto"}, {"disable_parallel_tool_use", 1}}}},
       "tool_choice.disable_parallel_tool_use"},
      {{{"thinking", true}}, "thinking"},
      {{{"thinking", {{"type", "on"}}}}, "thinking.type"},
      {{{"thinking", {{"budget_tokens", 2000}}}}, "thinking.type"},
      {{{"thinking", {{"type", "enabled"}}}}, "thinking.budget_tokens"},
      {{{"thinking", {{"type", "enabled"}, {"budget_tokens", 1023}}}}, "thinking.budget_tokens"},
      {{{"thinking", {{"type", "enabled"}, {"budget_tokens", 2048}}}}, "thinking.budget_tokens"},
      {{{"thinking", {{"type", "adaptive"}, {"display", "full"}}}}, "thinking.display"},
      {{{"output_config", 1}}, "output_config"},
      {{{"output_config", {{"effort", "extreme"}}}}, "output_config.effort"},
      {{{"output_config", {{"format", {{"type", "json_schema"}}}}}}, "output_config.format"},
      {{{"stop_sequences", "END"}}, "stop_sequences"},
      {{{"stop_sequences", {"END", ""}}}, "stop_sequences.1"},
      {{{"stop_sequences", {"END", 1}}}, "stop_sequences.1"},
      {{{"stop_sequences", Json(std::vector<std::string>(65, "x"))}}, "stop_sequences"},
      {{{"stream", "yes"}}, "stream"},
      {{{"temperature", 1.5}}, "temperature"},
      {{{"temperature", -0.1}}, "temperature"},
      {{{"top_p", 0}}, "top_p"},
      {{{"top_p", 1.01}}, "top_p"},
      {{{"top_k", -1}}, "top_k"},
      {{{"top_k", 0.5}}, "top_k"},
      {{{"metadata", "user-1"}}, "metadata"},
      {{{"guided_choice", "yes"}}, "guided_choice"},
      {{{"guided_choice", {""}}}, "guided_choice"},
      {{{"tools", {tool}}, {"tool_choice", {{"type", "any"}}}, {"guided_choice", {"x"}}},
       "guided_choice"},
  };
  for (const BadCase& c : cases) expect_rejected(c);
}

TEST(MessagesRequest, BodiesThatAreNotObjectsAreRefused) {
  for (const char* body : {"", "[]", "null", "3", "{", "{\"model\": \"m\",}", "\xff"}) {
    SCOPED_TRACE(body);
    OpenAiRequest out;
    std::optional<ApiError> error = parse_messages_request(MessagesRoute::kCreate, body, out);
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->status, 400);
  }
}

// Every prefix of a rich valid body, and the body with each member's value swapped for values
// of every other JSON type, is answered (accepted or a 400) without crashing.
TEST(MessagesRequest, TruncatedAndRetypedBodiesNeverCrash) {
  const Json body = with(
      base(),
      {{"system", {{{"type", "text"}, {"text", "s"}}}},
       {"tools", {{{"name", "f"}, {"input_schema", kWeatherSchema}}}},
       {"tool_choice", {{"type", "auto"}}},
       {"thinking", {{"type", "enabled"}, {"budget_tokens", 1024}}},
       {"stop_sequences", {"x"}},
       {"messages",
        {user("a"),
         assistant({{{"type", "thinking"}, {"thinking", "t"}, {"signature", "s"}},
                    {{"type", "tool_use"}, {"id", "i"}, {"name", "f"}, {"input", {{"a", 1}}}}}),
         user({{{"type", "tool_result"}, {"tool_use_id", "i"}, {"content", "r"}}})}}});
  const std::string text = body.dump();
  for (size_t n = 0; n < text.size(); ++n) {
    OpenAiRequest out;
    (void)parse_messages_request(MessagesRoute::kCreate, text.substr(0, n), out);
  }
  const std::vector<Json> values = {
      nullptr, true, 0, -1, 1.5, "s", Json::array(), Json::object(), Json::array({Json::object()})};
  for (const auto& [key, unused] : body.items()) {
    for (const Json& value : values) {
      Json retyped = body;
      retyped[key] = value;
      OpenAiRequest out;
      std::optional<ApiError> error =
          parse_messages_request(MessagesRoute::kCreate, retyped.dump(), out);
      if (error) {
        EXPECT_EQ(error->status, 400) << retyped.dump();
      }
    }
  }
}

TEST(MessagesRequest, MembersMapOntoTheChatRequest) {
  const Json tool = {
      {"name", "get_weather"}, {"description", "Weather"}, {"input_schema", kWeatherSchema}};
  const OpenAiRequest r = parse_ok(with(
      base(), {{"max_tokens", 4096},
               {"tools", {tool}},
               {"tool_choice",
                {{"type", "tool"}, {"name", "get_weather"}, {"disable_parallel_tool_use", true}}},
               {"stop_sequences", {"END", "\n\n"}},
               {"temperature", 0},
               {"top_p", 0.9},
               {"top_k", 40},
               {"stream", true},
               {"metadata", {{"user_id", "u"}}},
               {"thinking", {{"type", "enabled"}, {"budget_tokens", 1024}}},
               {"output_config", {{"effort", "max"}}}}));
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.endpoint, Endpoint::kChat);
  EXPECT_EQ(r.n, 1u);
  EXPECT_EQ(r.max_tokens, 4096u);
  EXPECT_TRUE(r.stream);
  EXPECT_EQ(r.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.top_p, 0.9f);
  EXPECT_EQ(r.top_k, 40);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"END", "\n\n"}));
  EXPECT_EQ(r.tool_choice, ToolChoice::kNamed);
  EXPECT_EQ(r.tool_choice_name, "get_weather");
  EXPECT_FALSE(r.parallel_tool_calls);
  EXPECT_TRUE(r.chat.thinking);
  EXPECT_EQ(r.chat.reasoning_effort, "max");
  ASSERT_EQ(r.chat.tools.size(), 1u);
  EXPECT_EQ(
      Json::parse(r.chat.tools[0]),
      Json({{"name", "get_weather"}, {"description", "Weather"}, {"parameters", kWeatherSchema}}));
}

TEST(MessagesRequest, ThinkingModes) {
  auto thinking = [](const Json& patch) { return parse_ok(with(base(), patch)).chat; };
  EXPECT_FALSE(thinking({}).thinking);
  EXPECT_FALSE(thinking({{"thinking", {{"type", "disabled"}}}}).thinking);
  EXPECT_FALSE(thinking({{"thinking", {{"type", "between_tools"}}}}).thinking);
  EXPECT_TRUE(thinking({{"thinking", {{"type", "adaptive"}}}}).thinking);
  const ChatRequest high =
      thinking({{"thinking", {{"type", "adaptive"}}}, {"output_config", {{"effort", "high"}}}});
  EXPECT_TRUE(high.thinking);
  EXPECT_FALSE(high.reasoning_effort.has_value());
  // count_tokens has no max_tokens to compare the budget with.
  const OpenAiRequest counted =
      parse_ok(with(base(), {{"max_tokens", nullptr},
                             {"thinking", {{"type", "enabled"}, {"budget_tokens", 100000}}}}),
               MessagesRoute::kCountTokens);
  EXPECT_TRUE(counted.chat.thinking);
  EXPECT_FALSE(counted.max_tokens.has_value());
}

// The prompt a Messages request renders equals the one its OpenAI chat equivalent renders.
void expect_same_prompt(const Json& messages_body, const Json& openai_body) {
  const OpenAiRequest anthropic = parse_ok(messages_body);
  Result<ChatRequest> chat = parse_chat_request_json(openai_body);
  ASSERT_TRUE(chat.is_ok()) << chat.message();
  Result<std::string> expected = render_chat_prompt(*chat);
  Result<std::string> got = render_chat_prompt(anthropic.chat);
  ASSERT_TRUE(expected.is_ok()) << expected.message();
  ASSERT_TRUE(got.is_ok()) << got.message();
  EXPECT_EQ(*got, *expected);
}

TEST(MessagesRequest, SystemAndTextRenderLikeChat) {
  expect_same_prompt(
      with(base(), {{"system", "Be brief."}}),
      {{"messages",
        {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "hi"}}}}});
  // Text blocks: the system's join into one message, a user turn's into one turn.
  expect_same_prompt(
      with(base(),
           {{"system", {{{"type", "text"}, {"text", "A"}}, {{"type", "text"}, {"text", "B"}}}},
            {"messages",
             {user({{{"type", "text"}, {"text", "x"}}, {{"type", "text"}, {"text", "y"}}})}}}),
      {{"messages",
        {{{"role", "system"}, {"content", "A\n\nB"}},
         {{"role", "user"}, {"content", "x"}},
         {{"role", "user"}, {"content", "y"}}}}});
}

TEST(MessagesRequest, ToolRoundTripRendersLikeChat) {
  const Json tool = {
      {"name", "get_weather"}, {"description", "Weather"}, {"input_schema", kWeatherSchema}};
  const Json anthropic = with(
      base(), {{"max_tokens", 2048},
               {"tools", {tool}},
               {"thinking", {{"type", "enabled"}, {"budget_tokens", 1024}}},
               {"messages",
                {user("Weather in Paris and Rome?"),
                 assistant({{{"type", "thinking"}, {"thinking", "Two calls."}, {"signature", "x"}},
                            {{"type", "text"}, {"text", "Checking."}},
                            {{"type", "tool_use"},
                             {"id", "t1"},
                             {"name", "get_weather"},
                             {"input", {{"city", "Paris"}, {"days", 3}}}},
                            {{"type", "tool_use"},
                             {"id", "t2"},
                             {"name", "get_weather"},
                             {"input", {{"city", "Rome"}}}}}),
                 user({{{"type", "tool_result"}, {"tool_use_id", "t2"}, {"content", "rain"}},
                       {{"type", "tool_result"},
                        {"tool_use_id", "t1"},
                        {"content", {{{"type", "text"}, {"text", "sun"}}}}},
                       {{"type", "text"}, {"text", "Thanks"}}})}}});
  const Json function = {
      {"name", "get_weather"}, {"description", "Weather"}, {"parameters", kWeatherSchema}};
  const Json openai = {
      {"thinking", true},
      {"tools", {{{"type", "function"}, {"function", function}}}},
      {"messages",
       {{{"role", "user"}, {"content", "Weather in Paris and Rome?"}},
        {{"role", "assistant"},
         {"content", "Checking."},
         {"reasoning_content", "Two calls."},
         {"tool_calls",
          {{{"id", "t1"},
            {"type", "function"},
            {"function",
             {{"name", "get_weather"}, {"arguments", R"({"city": "Paris", "days": 3})"}}}},
           {{"id", "t2"},
            {"type", "function"},
            {"function", {{"name", "get_weather"}, {"arguments", R"({"city": "Rome"})"}}}}}}},
        {{"role", "tool"}, {"tool_call_id", "t2"}, {"content", "rain"}},
        {{"role", "tool"}, {"tool_call_id", "t1"}, {"content", "sun"}},
        {{"role", "user"}, {"content", "Thanks"}}}}};
  expect_same_prompt(anthropic, openai);
}

TEST(MessagesRequest, FailedToolResultsAndMergedAssistantTurns) {
  const OpenAiRequest r = parse_ok(with(
      base(), {{"messages",
                {user("a"), assistant("b"), assistant({{{"type", "text"}, {"text", "c"}}}),
                 user({{{"type", "tool_result"},
                        {"tool_use_id", "t"},
                        {"is_error", true},
                        {"content", "boom"}},
                       {{"type", "tool_result"}, {"tool_use_id", "u"}, {"is_error", true}}})}}}));
  ASSERT_EQ(r.chat.messages.size(), 4u);
  EXPECT_EQ(r.chat.messages[1].role, "assistant");
  EXPECT_EQ(r.chat.messages[1].content, "bc");
  EXPECT_EQ(r.chat.messages[2].role, "tool");
  EXPECT_EQ(r.chat.messages[2].content, "Error: boom");
  EXPECT_EQ(r.chat.messages[3].content, "Error");
  EXPECT_EQ(r.chat.messages[3].tool_call_id, "u");
}

}  // namespace
}  // namespace v4::router
