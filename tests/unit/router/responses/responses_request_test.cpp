// Responses request parsing: every bad member is a 400 whose message names it, no input crashes
// the parser, a valid request renders exactly the DSML prompt of the equivalent OpenAI chat
// request (both go through DeepSeek-V4's encoder), and previous_response_id continues a stored
// conversation (or is a 404 that says whether the response is gone or never existed).
#include "router/responses/responses_request.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/chat/chat_encoder.h"
#include "router/responses/response_store.h"

namespace v4::router {
namespace {

using Json = nlohmann::ordered_json;

const Json kWeatherSchema = {
    {"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}, {"required", {"city"}}};
const Json kWeatherTool = {{"type", "function"},
                           {"name", "get_weather"},
                           {"description", "Weather"},
                           {"parameters", kWeatherSchema}};
const Json kWeatherFunction = {
    {"name", "get_weather"}, {"description", "Weather"}, {"parameters", kWeatherSchema}};

Json base() { return {{"model", "m"}, {"input", "hi"}}; }

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

Json message(const std::string& role, Json content) {
  return {{"type", "message"}, {"role", role}, {"content", std::move(content)}};
}
Json input_text(const std::string& text) { return {{"type", "input_text"}, {"text", text}}; }
Json output_text(const std::string& text) {
  return {{"type", "output_text"}, {"text", text}, {"annotations", Json::array()}};
}
Json call(const std::string& id, const std::string& arguments) {
  return {{"type", "function_call"},
          {"call_id", id},
          {"name", "get_weather"},
          {"arguments", arguments}};
}
Json call_output(const std::string& id, Json output) {
  return {{"type", "function_call_output"}, {"call_id", id}, {"output", std::move(output)}};
}
Json reasoning(const std::string& text) {
  return {{"type", "reasoning"},
          {"id", "rs_1"},
          {"summary", Json::array()},
          {"content", {{{"type", "reasoning_text"}, {"text", text}}}}};
}

OpenAiRequest parse_ok(const Json& body, ResponseStore* store = nullptr,
                       ResponsesState* state_out = nullptr) {
  OpenAiRequest out;
  ResponsesState state;
  std::optional<ApiError> error = parse_responses_request(body.dump(), store, out, state);
  EXPECT_FALSE(error.has_value()) << body.dump() << ": " << (error ? error->message : "");
  if (state_out != nullptr) *state_out = std::move(state);
  return out;
}

struct BadCase {
  Json patch;         // merged into base(); a null member is removed
  std::string field;  // what the message must name
};

TEST(ResponsesRequest, EveryBadMemberIsA400NamingIt) {
  const std::vector<BadCase> cases = {
      {{{"model", nullptr}}, "model"},
      {{{"model", 3}}, "model"},
      {{{"input", nullptr}}, "input"},
      {{{"input", 3}}, "input"},
      {{{"input", Json::array()}}, "input"},
      {{{"input", {"hi"}}}, "input[0]"},
      {{{"input", {{{"type", 3}}}}}, "input[0].type"},
      {{{"input", {{{"type", "web_search_call"}}}}}, "input[0].type"},
      {{{"input", {{{"type", "item_reference"}, {"id", "msg_1"}}}}}, "input[0].type"},
      {{{"input", {{{"content", "hi"}}}}}, "input[0].role"},
      {{{"input", {message("tool", "x")}}}, "input[0].role"},
      {{{"input", {{{"role", "user"}}}}}, "input[0].content"},
      {{{"input", {message("user", 3)}}}, "input[0].content"},
      {{{"input", {message("user", {3})}}}, "input[0].content[0]"},
      {{{"input", {message("user", {{{"type", "input_image"}, {"image_url", "x"}}})}}},
       "input[0].content[0].type"},
      {{{"input", {message("user", {{{"type", "input_file"}}})}}}, "input[0].content[0].type"},
      {{{"input", {message("user", {{{"type", "refusal"}, {"refusal", "no"}}})}}},
       "input[0].content[0].type"},
      {{{"input", {message("user", {{{"type", "input_text"}}})}}}, "input[0].content[0].text"},
      {{{"input", {message("user", "a"), message("assistant", "b")}}}, "input"},
      {{{"input", {message("user", "a"), reasoning("r")}}}, "input"},
      {{{"input", {message("user", "a"), call("c1", "{}")}}}, "function_call_output"},
      {{{"input", {message("user", "a"), {{"type", "function_call"}, {"name", "f"}}}}},
       "input[1].call_id"},
      {{{"input",
         {message("user", "a"),
          {{"type", "function_call"}, {"call_id", "c"}, {"name", "bad name"}, {"arguments", ""}}}}},
       "input[1].name"},
      {{{"input",
         {message("user", "a"), {{"type", "function_call"}, {"call_id", "c"}, {"name", "f"}}}}},
       "input[1].arguments"},
      {{{"input", {{{"type", "function_call_output"}, {"output", "x"}}}}}, "input[0].call_id"},
      {{{"input", {{{"type", "function_call_output"}, {"call_id", "c"}}}}}, "input[0].output"},
      {{{"input", {call_output("c", 3)}}}, "input[0].output"},
      {{{"input", {{{"type", "reasoning"}, {"summary", "x"}}, message("user", "a")}}},
       "input[0].summary"},
      {{{"input",
         {{{"type", "reasoning"}, {"content", {{{"type", "output_text"}, {"text", "x"}}}}},
          message("user", "a")}}},
       "input[0].content[0].type"},
      {{{"instructions", 3}}, "instructions"},
      {{{"max_output_tokens", 0}}, "max_output_tokens"},
      {{{"max_output_tokens", 1.5}}, "max_output_tokens"},
      {{{"max_output_tokens", "64"}}, "max_output_tokens"},
      {{{"max_output_tokens", 1e30}}, "max_output_tokens"},
      {{{"temperature", 2.5}}, "temperature"},
      {{{"temperature", "hot"}}, "temperature"},
      {{{"top_p", 0}}, "top_p"},
      {{{"top_p", 1.5}}, "top_p"},
      {{{"top_k", -2}}, "top_k"},
      {{{"seed", "x"}}, "seed"},
      {{{"stream", "yes"}}, "stream"},
      {{{"stream_options", {{"include_obfuscation", false}}}}, "stream_options"},
      {{{"store", 1}}, "store"},
      {{{"background", true}}, "background"},
      {{{"conversation", "conv_1"}}, "conversation"},
      {{{"prompt", {{"id", "pmpt_1"}}}}, "prompt"},
      {{{"tools", "x"}}, "tools"},
      {{{"tools", {3}}}, "tools[0]"},
      {{{"tools", {{{"name", "f"}}}}}, "tools[0].type"},
      {{{"tools", {{{"type", "web_search"}}}}}, "tools[0].type"},
      {{{"tools", {{{"type", "function"}}}}}, "tools[0].name"},
      {{{"tools", {{{"type", "function"}, {"name", "a\"b"}}}}}, "tools[0].name"},
      {{{"tools", {kWeatherTool, kWeatherTool}}}, "tools[1].name"},
      {{{"tools", {with(kWeatherTool, {{"parameters", "x"}})}}}, "tools[0].parameters"},
      {{{"tools", {with(kWeatherTool, {{"description", 3}})}}}, "tools[0].description"},
      {{{"tools", {with(kWeatherTool, {{"strict", "yes"}})}}}, "tools[0].strict"},
      {{{"tool_choice", "any"}}, "tool_choice"},
      {{{"tool_choice", "auto"}}, "tool_choice"},  // needs tools
      {{{"tool_choice", 3}}, "tool_choice"},
      {{{"tools", {kWeatherTool}}, {"tool_choice", {{"type", "function"}}}}, "tool_choice.name"},
      {{{"tools", {kWeatherTool}}, {"tool_choice", {{"type", "function"}, {"name", "other"}}}},
       "tool_choice.name"},
      {{{"tools", {kWeatherTool}}, {"tool_choice", {{"type", "file_search"}}}}, "tool_choice.type"},
      {{{"parallel_tool_calls", "no"}}, "parallel_tool_calls"},
      {{{"reasoning", "high"}}, "reasoning"},
      {{{"reasoning", {{"effort", "extreme"}}}}, "reasoning.effort"},
      {{{"reasoning", {{"effort", 3}}}}, "reasoning.effort"},
      {{{"reasoning", {{"summary", "long"}}}}, "reasoning.summary"},
      {{{"text", "x"}}, "text"},
      {{{"text", {{"format", {{"type", "yaml"}}}}}}, "text.format"},
      {{{"text", {{"format", {{"type", "json_schema"}}}}}}, "text.format.schema"},
      {{{"text",
         {{"format",
           {{"type", "json_schema"}, {"schema", {{"type", "string"}, {"pattern", "a"}}}}}}}},
       "'pattern'"},
      {{{"tools", {kWeatherTool}},
        {"tool_choice", "required"},
        {"text", {{"format", {{"type", "json_object"}}}}}},
       "text.format"},
      {{{"text", {{"verbosity", "loud"}}}}, "text.verbosity"},
      {{{"truncation", "sometimes"}}, "truncation"},
      {{{"include", "x"}}, "include"},
      {{{"metadata", "x"}}, "metadata"},
      {{{"metadata", {{"k", 3}}}}, "metadata.k"},
      {{{"user", 3}}, "user"},
      {{{"top_logprobs", 5}}, "top_logprobs"},
      {{{"top_logprobs", 50}}, "top_logprobs"},
      {{{"max_tool_calls", 0}}, "max_tool_calls"},
      {{{"previous_response_id", 3}}, "previous_response_id"},
      {{{"guided_choice", "yes"}}, "guided_choice"},
      {{{"guided_choice", {""}}}, "guided_choice"},
      {{{"tools", {kWeatherTool}}, {"tool_choice", "required"}, {"guided_choice", {"x"}}},
       "guided_choice"},
  };
  for (const BadCase& c : cases) {
    const Json body = with(base(), c.patch);
    SCOPED_TRACE(body.dump());
    OpenAiRequest out;
    ResponsesState state;
    std::optional<ApiError> error = parse_responses_request(body.dump(), nullptr, out, state);
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->status, 400);
    EXPECT_EQ(error->type, "invalid_request_error");
    EXPECT_NE(error->message.find(c.field), std::string::npos) << error->message;
  }
}

TEST(ResponsesRequest, TextFormatBecomesAnOutputConstraint) {
  const Json schema = {{"type", "object"}, {"properties", {{"a", {{"type", "boolean"}}}}}};
  const Json format = {
      {"type", "json_schema"}, {"name", "x"}, {"schema", schema}, {"strict", true}};
  OpenAiRequest out;
  ResponsesState state;
  ASSERT_FALSE(parse_responses_request(with(base(), {{"text", {{"format", format}}}}).dump(),
                                       nullptr, out, state));
  EXPECT_EQ(out.constraint, OutputConstraintKind::kJsonSchema);
  EXPECT_EQ(Json::parse(out.constraint_source), schema);
  EXPECT_EQ(Json::parse(state.echo["text"]["format"].dump()), format);
  OpenAiRequest object;
  ResponsesState object_state;
  ASSERT_FALSE(parse_responses_request(
      with(base(), {{"text", {{"format", {{"type", "json_object"}}}}}}).dump(), nullptr, object,
      object_state));
  EXPECT_EQ(object.constraint, OutputConstraintKind::kJsonObject);
}

TEST(ResponsesRequest, BodiesThatAreNotObjectsAreRefused) {
  for (const char* body : {"", "[]", "null", "3", "{", "{\"model\": \"m\",}", "\xff"}) {
    SCOPED_TRACE(body);
    OpenAiRequest out;
    ResponsesState state;
    std::optional<ApiError> error = parse_responses_request(body, nullptr, out, state);
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->status, 400);
  }
}

// Every prefix of a rich valid body, and the body with each member's value (and each input
// item's members) swapped for values of every other JSON type, is answered (accepted, a 400,
// or the 404 of an unknown previous response) without crashing.
TEST(ResponsesRequest, TruncatedAndRetypedBodiesNeverCrash) {
  ResponseStore store(1 << 20);
  const Json body =
      with(base(), {{"instructions", "s"},
                    {"tools", {kWeatherTool}},
                    {"tool_choice", "auto"},
                    {"reasoning", {{"effort", "high"}, {"summary", "auto"}}},
                    {"metadata", {{"k", "v"}}},
                    {"text", {{"format", {{"type", "text"}}}}},
                    {"max_output_tokens", 64},
                    {"input",
                     {message("user", {input_text("a")}), reasoning("t"),
                      message("assistant", {output_text("b")}), call("c1", R"({"city":"P"})"),
                      call_output("c1", "r"), message("user", "more")}}});
  const std::string text = body.dump();
  for (size_t n = 0; n < text.size(); ++n) {
    OpenAiRequest out;
    ResponsesState state;
    (void)parse_responses_request(text.substr(0, n), &store, out, state);
  }
  const std::vector<Json> values = {
      nullptr, true, 0, -1, 1.5, "s", Json::array(), Json::object(), Json::array({Json::object()})};
  auto check = [&](const Json& retyped) {
    OpenAiRequest out;
    ResponsesState state;
    std::optional<ApiError> error = parse_responses_request(retyped.dump(), &store, out, state);
    if (error) {
      EXPECT_TRUE(error->status == 400 || error->status == 404) << retyped.dump();
    }
  };
  for (const auto& [key, unused] : body.items()) {
    for (const Json& value : values) check(with(body, {{key, value.is_null() ? Json() : value}}));
  }
  for (size_t i = 0; i < body["input"].size(); ++i) {
    for (const auto& [key, unused] : body["input"][i].items()) {
      for (const Json& value : values) {
        Json retyped = body;
        retyped["input"][i][key] = value;
        check(retyped);
      }
    }
  }
}

TEST(ResponsesRequest, MembersMapOntoTheChatRequest) {
  ResponsesState state;
  const OpenAiRequest r =
      parse_ok(with(base(), {{"max_output_tokens", 4096},
                             {"tools", {kWeatherTool}},
                             {"tool_choice", {{"type", "function"}, {"name", "get_weather"}}},
                             {"parallel_tool_calls", false},
                             {"temperature", 0},
                             {"top_p", 0.9},
                             {"top_k", 40},
                             {"seed", 7},
                             {"stream", true},
                             {"store", false},
                             {"metadata", {{"user_id", "u"}}},
                             {"reasoning", {{"effort", "xhigh"}}}}),
               nullptr, &state);
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.endpoint, Endpoint::kChat);
  EXPECT_EQ(r.n, 1u);
  EXPECT_EQ(r.max_tokens, 4096u);
  EXPECT_TRUE(r.stream);
  EXPECT_EQ(r.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.top_p, 0.9f);
  EXPECT_EQ(r.top_k, 40);
  EXPECT_EQ(r.seed, 7u);
  EXPECT_EQ(r.tool_choice, ToolChoice::kNamed);
  EXPECT_EQ(r.tool_choice_name, "get_weather");
  EXPECT_FALSE(r.parallel_tool_calls);
  EXPECT_TRUE(r.chat.thinking);
  EXPECT_EQ(r.chat.reasoning_effort, "max");
  ASSERT_EQ(r.chat.tools.size(), 1u);
  EXPECT_EQ(Json::parse(r.chat.tools[0]), kWeatherFunction);
  EXPECT_FALSE(state.store);
  EXPECT_EQ(state.echo["metadata"], Json({{"user_id", "u"}}));
  EXPECT_EQ(state.echo["tool_choice"], Json({{"type", "function"}, {"name", "get_weather"}}));
  EXPECT_EQ(state.echo["tools"][0]["strict"], true);  // OpenAI's default, echoed
  EXPECT_EQ(state.echo["reasoning"]["effort"], "xhigh");
  EXPECT_EQ(state.echo["max_output_tokens"], 4096);
  // Defaults: no tools, no thinking, stored.
  ResponsesState plain;
  const OpenAiRequest d = parse_ok(base(), nullptr, &plain);
  EXPECT_EQ(d.tool_choice, ToolChoice::kNone);
  EXPECT_FALSE(d.chat.thinking);
  EXPECT_FALSE(d.max_tokens.has_value());
  EXPECT_TRUE(plain.store);
  EXPECT_EQ(plain.echo["instructions"], nullptr);
  EXPECT_EQ(plain.echo["tools"], Json::array());
}

TEST(ResponsesRequest, ReasoningEffortSelectsTheMode) {
  struct Case {
    Json reasoning;
    bool thinking;
    std::optional<std::string> effort;
  };
  const std::vector<Case> cases = {
      {nullptr, false, std::nullopt},
      {{{"effort", "none"}}, false, std::nullopt},
      {{{"effort", "minimal"}}, false, std::nullopt},
      {{{"effort", "low"}}, true, std::nullopt},
      {{{"effort", "medium"}}, true, std::nullopt},
      {{{"effort", "high"}}, true, std::nullopt},
      {{{"summary", "auto"}}, true, std::nullopt},
      {{{"effort", "xhigh"}}, true, "max"},
      {{{"effort", "max"}}, true, "max"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.reasoning.dump());
    const OpenAiRequest r = parse_ok(with(base(), {{"reasoning", c.reasoning}}));
    EXPECT_EQ(r.chat.thinking, c.thinking);
    EXPECT_EQ(r.chat.reasoning_effort, c.effort);
  }
}

void expect_same_prompt(const OpenAiRequest& responses, const Json& openai_body) {
  Result<ChatRequest> chat = parse_chat_request_json(openai_body);
  ASSERT_TRUE(chat.is_ok()) << chat.message();
  Result<std::string> expected = render_chat_prompt(*chat);
  Result<std::string> got = render_chat_prompt(responses.chat);
  ASSERT_TRUE(expected.is_ok()) << expected.message();
  ASSERT_TRUE(got.is_ok()) << got.message();
  EXPECT_EQ(*got, *expected);
}

TEST(ResponsesRequest, InstructionsAndTextRenderLikeChat) {
  expect_same_prompt(
      parse_ok(with(base(), {{"instructions", "Be brief."}})),
      {{"messages",
        {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "hi"}}}}});
  // Easy messages without a type, parts joined as chat joins text parts, developer turns.
  expect_same_prompt(
      parse_ok(with(base(), {{"input",
                              {{{"role", "developer"}, {"content", "Rules."}},
                               message("user", {input_text("x"), input_text("y")}),
                               message("assistant", {output_text("z")}),
                               {{"role", "user"}, {"content", "w"}}}}})),
      {{"messages",
        {{{"role", "developer"}, {"content", "Rules."}},
         {{"role", "user"},
          {"content", {{{"type", "text"}, {"text", "x"}}, {{"type", "text"}, {"text", "y"}}}}},
         {{"role", "assistant"}, {"content", "z"}},
         {{"role", "user"}, {"content", "w"}}}}});
}

// An agent turn: reasoning, a message and two calls of one output, the outputs (out of
// order), a new user message; in thinking mode with tools.
Json agent_input() {
  return {message("user", "Weather in Paris and Rome?"),
          reasoning("Two calls."),
          message("assistant", {output_text("Checking.")}),
          call("t1", R"({"city": "Paris", "days": 3})"),
          call("t2", R"({"city": "Rome"})"),
          call_output("t2", "rain"),
          call_output("t1", {input_text("sun")}),
          message("user", "Thanks")};
}

Json agent_chat_messages() {
  return {{{"role", "user"}, {"content", "Weather in Paris and Rome?"}},
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
          {{"role", "user"}, {"content", "Thanks"}}};
}

TEST(ResponsesRequest, ToolRoundTripRendersLikeChat) {
  const OpenAiRequest r = parse_ok(with(base(), {{"tools", {kWeatherTool}},
                                                 {"reasoning", {{"effort", "high"}}},
                                                 {"instructions", "Be useful."},
                                                 {"input", agent_input()}}));
  Json messages = agent_chat_messages();
  const Json system = {{"role", "system"}, {"content", "Be useful."}};
  messages.insert(messages.begin(), system);
  expect_same_prompt(r, {{"thinking", true},
                         {"tools", {{{"type", "function"}, {"function", kWeatherFunction}}}},
                         {"messages", messages}});
}

StoredResponse stored_turn() {
  StoredResponse stored;
  stored.response_json = R"({"id":"x"})";
  ChatMessage user;
  user.role = "user";
  user.content = "Weather in Paris?";
  ChatMessage assistant;
  assistant.role = "assistant";
  assistant.reasoning = "One call.";
  assistant.tool_calls.push_back({"call_a", "get_weather", R"({"city": "Paris"})", true});
  stored.conversation = {user, assistant};
  // Not what re-rendering the call gives (the model wrote a different spacing): a
  // continuation must render these very bytes.
  const std::string d = kDsmlText;
  stored.tool_call_dsml["call_a"] = "<" + d + "invoke name=\"get_weather\">\n<" + d +
                                    "parameter name=\"city\" string=\"true\">Paris</" + d +
                                    "parameter>\n</" + d + "invoke>\n";
  return stored;
}

TEST(ResponsesRequest, PreviousResponseContinuesTheStoredConversation) {
  ResponseStore store(1 << 20);
  const std::string id = store.new_id(true);
  store.put(id, stored_turn());
  ResponsesState state;
  const OpenAiRequest r = parse_ok(with(base(), {{"previous_response_id", id},
                                                 {"instructions", "New rules."},
                                                 {"tools", {kWeatherTool}},
                                                 {"input", {call_output("call_a", "sunny")}}}),
                                   &store, &state);
  ASSERT_EQ(r.chat.messages.size(), 4u);
  EXPECT_EQ(r.chat.messages[0].role, "system");
  EXPECT_EQ(r.chat.messages[0].content, "New rules.");
  EXPECT_EQ(r.chat.messages[1].content, "Weather in Paris?");
  EXPECT_EQ(r.chat.messages[2].tool_calls.at(0).id, "call_a");
  EXPECT_EQ(r.chat.messages[3].role, "tool");
  EXPECT_EQ(state.echo["previous_response_id"], id);
  // The instructions are this request's only; the stored conversation goes on with the input.
  ASSERT_EQ(state.conversation.size(), 3u);
  EXPECT_EQ(state.conversation[0].role, "user");
  EXPECT_EQ(r.chat.tool_call_dsml.at("call_a"), stored_turn().tool_call_dsml.at("call_a"));
  Result<std::string> prompt = render_chat_prompt(r.chat);
  ASSERT_TRUE(prompt.is_ok()) << prompt.message();
  EXPECT_NE(prompt->find(stored_turn().tool_call_dsml.at("call_a")), std::string::npos);
}

TEST(ResponsesRequest, ReplayedCallItemsRenderTheStoredDsml) {
  ResponseStore store(1 << 20);
  store.put(store.new_id(true), stored_turn());
  const std::string dsml = stored_turn().tool_call_dsml.at("call_a");
  auto input = [](const std::string& arguments) {
    return Json{message("user", "Weather in Paris?"), call("call_a", arguments),
                call_output("call_a", "sunny")};
  };
  const OpenAiRequest same = parse_ok(
      with(base(), {{"tools", {kWeatherTool}}, {"input", input(R"({"city": "Paris"})")}}), &store);
  EXPECT_EQ(same.chat.tool_call_dsml.at("call_a"), dsml);
  // A client that changed the arguments gets its own call rendered.
  const OpenAiRequest edited = parse_ok(
      with(base(), {{"tools", {kWeatherTool}}, {"input", input(R"({"city": "Rome"})")}}), &store);
  EXPECT_EQ(edited.chat.tool_call_dsml.count("call_a"), 0u);
}

TEST(ResponsesRequest, MissingPreviousResponsesAre404sSayingWhy) {
  ResponseStore store(1 << 20);
  const std::string gone = store.new_id(true);
  store.put(gone, stored_turn());
  ASSERT_TRUE(store.erase(gone));
  const std::string never = ResponseStore(1 << 20).new_id(true);  // another server's
  for (const std::string& id : {gone, never, std::string("resp_x")}) {
    SCOPED_TRACE(id);
    OpenAiRequest out;
    ResponsesState state;
    std::optional<ApiError> error = parse_responses_request(
        with(base(), {{"previous_response_id", id}}).dump(), &store, out, state);
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->status, 404);
    EXPECT_EQ(error->param, "previous_response_id");
    EXPECT_EQ(error->code, "previous_response_not_found");
    EXPECT_NE(error->message.find(id), std::string::npos);
    EXPECT_EQ(error->message.find("evicted") != std::string::npos, id == gone) << error->message;
  }
}

}  // namespace
}  // namespace v4::router
