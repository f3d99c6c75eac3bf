// OpenAI response and chunk JSON built from real ChoiceOutputs (hand-written model output in
// the spec §5.8 layout), read back with nlohmann and checked member by member.
#include "router/openai/openai_response.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "model/chat/chat_encoder.h"
#include "tests/unit/common/deepseek_tokenizer.h"

namespace v4::router {
namespace {

using Json = nlohmann::json;
using test_support::DeepSeekTest;

const std::string kD = kDsmlText;

ResponseMeta meta(Endpoint endpoint, bool logprobs) {
  ResponseMeta m;
  m.id = endpoint == Endpoint::kChat ? "chatcmpl-1" : "cmpl-1";
  m.created = 1700000000;
  m.model = "deepseek-v4-flash";
  m.endpoint = endpoint;
  m.logprobs = logprobs;
  return m;
}

class OpenAiResponseTest : public DeepSeekTest {
 protected:
  // Runs `output` (special tokens allowed) through a choice, ending with EOS.
  static ChoiceOutput run(ChoiceOutputOptions options, const std::string& output,
                          std::vector<ChoiceDelta>* deltas = nullptr) {
    ChoiceOutput choice = ChoiceOutput::create(tok(), std::move(options)).value();
    const std::vector<TokenId> ids = tok().encode(output, true);
    for (size_t i = 0; i <= ids.size(); ++i) {
      EngineEvent event;
      event.token = i < ids.size() ? ids[i] : tok().eos_id();
      event.finish = i < ids.size() ? EngineFinish::kNone : EngineFinish::kStop;
      event.logprob = -0.25f * static_cast<float>(i);
      event.top_logprobs = {{event.token, event.logprob}, {event.token + 1, -INFINITY}};
      ChoiceDelta delta = choice.push(event);
      if (deltas != nullptr) deltas->push_back(std::move(delta));
    }
    return choice;
  }
};

TEST_F(OpenAiResponseTest, ChatCompletionWithReasoningToolCallsAndUsage) {
  ChoiceOutputOptions options;
  options.thinking = true;
  options.parse_tools = true;
  const std::string invoke = "<" + kD + "invoke name=\"get_weather\">\n<" + kD +
                             "parameter name=\"city\" string=\"true\">Paris</" + kD +
                             "parameter>\n</" + kD + "invoke>";
  const ChoiceOutput called =
      run(options, "Need weather.</think>Checking.\n\n<" + kD + "tool_calls>\n" + invoke + "\n</" +
                       kD + "tool_calls>");
  options.parse_tools = false;
  options.thinking = false;
  const ChoiceOutput plain = run(options, "Just text.");
  const Usage usage{12, called.completion_tokens() + plain.completion_tokens(), 4};
  const Json r = Json::parse(response_json(meta(Endpoint::kChat, false), {&called, &plain}, usage));

  EXPECT_EQ(r["id"], "chatcmpl-1");
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["created"], 1700000000);
  EXPECT_EQ(r["model"], "deepseek-v4-flash");
  ASSERT_EQ(r["choices"].size(), 2u);
  const Json& first = r["choices"][0];
  EXPECT_EQ(first["index"], 0);
  EXPECT_EQ(first["finish_reason"], "tool_calls");
  EXPECT_TRUE(first["logprobs"].is_null());
  const Json& message = first["message"];
  EXPECT_EQ(message["role"], "assistant");
  EXPECT_EQ(message["content"], "Checking.");
  EXPECT_EQ(message["reasoning_content"], "Need weather.");
  ASSERT_EQ(message["tool_calls"].size(), 1u);
  const Json& call = message["tool_calls"][0];
  EXPECT_EQ(call["id"], "call_0");
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(Json::parse(call["function"]["arguments"].get<std::string>()),
            Json({{"city", "Paris"}}));

  const Json& second = r["choices"][1];
  EXPECT_EQ(second["index"], 1);
  EXPECT_EQ(second["message"]["content"], "Just text.");
  EXPECT_FALSE(second["message"].contains("reasoning_content"));
  EXPECT_FALSE(second["message"].contains("tool_calls"));
  EXPECT_EQ(second["finish_reason"], "stop");

  EXPECT_EQ(r["usage"]["prompt_tokens"], 12);
  EXPECT_EQ(r["usage"]["completion_tokens"], usage.completion_tokens);
  EXPECT_EQ(r["usage"]["total_tokens"], 12 + usage.completion_tokens);
  EXPECT_EQ(r["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
}

TEST_F(OpenAiResponseTest, ToolCallsOnlyHaveNullContent) {
  ChoiceOutputOptions options;
  options.parse_tools = true;
  const ChoiceOutput choice =
      run(options, "\n\n<" + kD + "tool_calls>\n<" + kD + "invoke name=\"now\">\n\n</" + kD +
                       "invoke>\n</" + kD + "tool_calls>");
  const Json r = Json::parse(response_json(meta(Endpoint::kChat, false), {&choice}, Usage{}));
  EXPECT_TRUE(r["choices"][0]["message"]["content"].is_null());
  EXPECT_EQ(r["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{}");
}

TEST_F(OpenAiResponseTest, ChatLogprobs) {
  ChoiceOutputOptions options;
  options.logprobs = true;
  options.top_logprobs = 2;
  const ChoiceOutput choice = run(options, "Hi there");
  const Json r = Json::parse(response_json(meta(Endpoint::kChat, true), {&choice}, Usage{}));
  const Json& content = r["choices"][0]["logprobs"]["content"];
  const std::vector<TokenId> ids = tok().encode("Hi there");
  ASSERT_EQ(content.size(), ids.size());  // the EOS stop token has no entry
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) {
    const Json& entry = content[i];
    const std::string_view bytes = tok().token_bytes(ids[i]);
    EXPECT_EQ(entry["token"], std::string(bytes));
    EXPECT_EQ(entry["bytes"], Json(std::vector<int>(bytes.begin(), bytes.end())));
    EXPECT_DOUBLE_EQ(entry["logprob"].get<double>(), -0.25 * static_cast<double>(i));
    ASSERT_EQ(entry["top_logprobs"].size(), 2u);
    EXPECT_EQ(entry["top_logprobs"][0]["token"], std::string(bytes));
    EXPECT_EQ(entry["top_logprobs"][1]["logprob"], -9999.0);  // -inf is not JSON
    EXPECT_TRUE(entry["top_logprobs"][1]["bytes"].is_array());
    text += entry["token"].get<std::string>();
  }
  EXPECT_EQ(text, "Hi there");
}

TEST_F(OpenAiResponseTest, CompletionWithEchoAndLogprobs) {
  ChoiceOutputOptions options;
  options.chat = false;
  options.logprobs = true;
  options.top_logprobs = 1;
  const ChoiceOutput choice = run(options, " wörld");
  const std::string prefix = "Hällo";  // 5 code points, 6 bytes
  ChoicePrompt echoed;
  echoed.echo = prefix;
  const Json r = Json::parse(
      response_json(meta(Endpoint::kCompletions, true), {&choice}, Usage{3, 2, 0}, {echoed}));
  EXPECT_EQ(r["object"], "text_completion");
  const Json& c = r["choices"][0];
  EXPECT_EQ(c["text"], prefix + " wörld");
  EXPECT_EQ(c["finish_reason"], "stop");
  const Json& lp = c["logprobs"];
  const std::vector<TokenId> ids = tok().encode(" wörld");
  ASSERT_EQ(lp["tokens"].size(), ids.size());
  ASSERT_EQ(lp["token_logprobs"].size(), ids.size());
  ASSERT_EQ(lp["top_logprobs"].size(), ids.size());
  ASSERT_EQ(lp["text_offset"].size(), ids.size());
  EXPECT_EQ(lp["text_offset"][0], 5);
  size_t offset = 5;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string token = lp["tokens"][i];
    EXPECT_EQ(lp["text_offset"][i], offset);
    for (char ch : token) offset += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
    ASSERT_TRUE(lp["top_logprobs"][i].is_object());
    EXPECT_EQ(lp["top_logprobs"][i].size(), 1u);
    EXPECT_TRUE(lp["top_logprobs"][i].contains(token));
  }
  const Json no_logprobs =
      Json::parse(response_json(meta(Endpoint::kCompletions, false), {&choice}, Usage{}));
  EXPECT_TRUE(no_logprobs["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(no_logprobs["choices"][0]["text"], " wörld");
}

// Echo with logprobs: the prompt's entries lead, the first with null logprob and top_logprobs,
// offsets counting the echoed text (not the BOS in front of it); vLLM's prompt_logprobs beside.
TEST_F(OpenAiResponseTest, CompletionEchoLeadsWithPromptEntries) {
  ChoiceOutputOptions options;
  options.chat = false;
  options.logprobs = true;
  options.top_logprobs = 1;
  const ChoiceOutput choice = run(options, "!");
  ChoicePrompt prompt;
  prompt.echo = "Hällo wörld";
  prompt.echo_top = 1;
  prompt.prompt_top = 2;
  std::vector<int32_t> ids{tok().bos_id()};
  for (TokenId id : tok().encode(prompt.echo)) ids.push_back(id);
  ASSERT_GE(ids.size(), 3u);
  std::vector<EnginePromptLogprob> scores;
  for (size_t i = 1; i < ids.size(); ++i)
    scores.push_back({ids[i], -1.0f * i, 4, {{ids[i] + 1, -0.5f}, {ids[i], -1.0f * i}}});
  EXPECT_FALSE(score_choice_prompt(tok(), ids, 1, {scores.begin() + 1, scores.end()}, prompt));
  ASSERT_TRUE(score_choice_prompt(tok(), ids, 1, scores, prompt));

  const Json r =
      Json::parse(response_json(meta(Endpoint::kCompletions, true), {&choice}, Usage{}, {prompt}));
  const Json& c = r["choices"][0];
  EXPECT_EQ(c["text"], prompt.echo + "!");
  const Json& lp = c["logprobs"];
  const size_t n = ids.size();
  ASSERT_EQ(lp["tokens"].size(), n + 1);  // the prompt, then "!"
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  EXPECT_EQ(lp["text_offset"][0], 0);  // the BOS is not echoed
  std::string text;
  for (size_t i = 1; i < n; ++i) {
    size_t points = 0;
    for (char ch : text) points += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
    EXPECT_EQ(lp["text_offset"][i], points) << i;
    text += lp["tokens"][i].get<std::string>();
    EXPECT_FLOAT_EQ(lp["token_logprobs"][i].get<float>(), -1.0f * i);
    EXPECT_EQ(lp["top_logprobs"][i].size(), 1u);
  }
  EXPECT_EQ(text, prompt.echo);
  EXPECT_EQ(lp["text_offset"][n], 11);  // "!" after the 11 code points of the echo
  EXPECT_EQ(lp["tokens"][n], "!");

  const Json& vllm = c["prompt_logprobs"];
  ASSERT_EQ(vllm.size(), n);
  EXPECT_TRUE(vllm[0].is_null());
  const Json& second = vllm[1][std::to_string(ids[1])];
  EXPECT_FLOAT_EQ(second["logprob"].get<float>(), -1.0f);
  EXPECT_EQ(second["rank"], 4);
  EXPECT_EQ(vllm[1].size(), 2u);  // the prompt token and the other of its top two
  EXPECT_EQ(vllm[1][std::to_string(ids[1] + 1)]["rank"], 1);

  const Json chunk =
      Json::parse(prompt_chunk_json(meta(Endpoint::kCompletions, true), 0, prompt, false));
  EXPECT_EQ(chunk["choices"][0]["text"], prompt.echo);
  EXPECT_EQ(chunk["choices"][0]["logprobs"]["tokens"].size(), n);
  EXPECT_EQ(chunk["choices"][0]["prompt_logprobs"].size(), n);
}

TEST_F(OpenAiResponseTest, ChatChunksCarryToolCallsTheWayTheSdkAccumulates) {
  ChoiceOutputOptions options;
  options.parse_tools = true;
  std::vector<ChoiceDelta> deltas;
  const std::string output = "Ok.\n\n<" + kD + "tool_calls>\n<" + kD + "invoke name=\"f\">\n<" +
                             kD + "parameter name=\"x\" string=\"false\">[1, 2]</" + kD +
                             "parameter>\n</" + kD + "invoke>\n</" + kD + "tool_calls>";
  const ChoiceOutput choice = run(options, output, &deltas);
  const ResponseMeta m = meta(Endpoint::kChat, false);
  std::string content, name, arguments, id;
  bool first = true;
  for (size_t i = 0; i < deltas.size(); ++i) {
    const bool last = i + 1 == deltas.size();
    const Json chunk =
        Json::parse(chunk_json(m, 0, deltas[i], first, last ? choice.finish_reason() : "", true));
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_TRUE(chunk.contains("usage") && chunk["usage"].is_null());
    const Json& c = chunk["choices"][0];
    EXPECT_EQ(c["index"], 0);
    EXPECT_EQ(c["finish_reason"], last ? Json("tool_calls") : Json());
    const Json& delta = c["delta"];
    EXPECT_EQ(delta.contains("role"), first);
    first = false;
    if (delta.contains("content")) content += delta["content"].get<std::string>();
    EXPECT_FALSE(delta.contains("reasoning_content"));
    for (const Json& call : delta.value("tool_calls", Json::array())) {
      EXPECT_EQ(call["index"], 0);
      if (call.contains("id")) {
        EXPECT_TRUE(id.empty());  // id, type and name come once
        id = call["id"];
        EXPECT_EQ(call["type"], "function");
        name += call["function"]["name"].get<std::string>();
      } else {
        EXPECT_FALSE(call["function"].contains("name"));
      }
      arguments += call["function"]["arguments"].get<std::string>();
    }
  }
  EXPECT_EQ(content, "Ok.");
  EXPECT_EQ(id, "call_0");
  EXPECT_EQ(name, "f");
  EXPECT_EQ(Json::parse(arguments), Json({{"x", {1, 2}}}));

  const Json bare = Json::parse(chunk_json(m, 3, ChoiceDelta{}, false, "", false));
  EXPECT_FALSE(bare.contains("usage"));
  EXPECT_EQ(bare["choices"][0]["index"], 3);
  EXPECT_TRUE(bare["choices"][0]["delta"].empty());
  EXPECT_TRUE(bare["choices"][0]["logprobs"].is_null());
}

TEST_F(OpenAiResponseTest, CompletionChunksUsageChunkModelsAndSse) {
  ChoiceDelta delta;
  delta.content = "abc";
  const Json chunk =
      Json::parse(chunk_json(meta(Endpoint::kCompletions, false), 1, delta, true, "length", false));
  EXPECT_EQ(chunk["object"], "text_completion");
  EXPECT_EQ(chunk["choices"][0]["text"], "abc");
  EXPECT_EQ(chunk["choices"][0]["index"], 1);
  EXPECT_EQ(chunk["choices"][0]["finish_reason"], "length");

  const Json usage = Json::parse(usage_chunk_json(meta(Endpoint::kChat, false), Usage{7, 5, 2}));
  EXPECT_EQ(usage["object"], "chat.completion.chunk");
  EXPECT_TRUE(usage["choices"].is_array() && usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 12);
  EXPECT_EQ(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 2);

  const Json models = Json::parse(models_json("deepseek-v4-flash", 1700000000, 65536));
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], "deepseek-v4-flash");
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(models["data"][0]["created"], 1700000000);
  EXPECT_EQ(models["data"][0]["owned_by"], "v4serve");
  EXPECT_EQ(models["data"][0]["max_model_len"], 65536);

  EXPECT_EQ(sse_event("{\"a\":1}"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(std::string(kSseDone), "data: [DONE]\n\n");
}

// Members agents read: system_fingerprint on every object, message.refusal (null), the reasoning
// token count (the </think> token included) and the prefix-cache hits.
TEST_F(OpenAiResponseTest, FingerprintRefusalAndTokenDetails) {
  ChoiceOutputOptions options;
  options.thinking = true;
  const std::string reasoning = "Think about it.";
  const ChoiceOutput choice = run(options, reasoning + kThinkEndText + "Answer.");
  EXPECT_EQ(choice.reasoning_tokens(), tok().encode(reasoning).size() + 1);
  ResponseMeta m = meta(Endpoint::kChat, false);
  m.system_fingerprint = "fp_0123456789ab";
  Usage usage{10, choice.completion_tokens(), 6, choice.reasoning_tokens()};
  const Json r = Json::parse(response_json(m, {&choice}, usage));
  EXPECT_EQ(r["system_fingerprint"], "fp_0123456789ab");
  ASSERT_TRUE(r["choices"][0]["message"].contains("refusal"));
  EXPECT_TRUE(r["choices"][0]["message"]["refusal"].is_null());
  EXPECT_EQ(r["usage"]["completion_tokens_details"]["reasoning_tokens"], usage.reasoning_tokens);
  EXPECT_EQ(r["usage"]["prompt_tokens_details"]["cached_tokens"], 6);
  const Json chunk = Json::parse(chunk_json(m, 0, ChoiceDelta{}, true, "", false));
  EXPECT_EQ(chunk["system_fingerprint"], "fp_0123456789ab");
  const Json last = Json::parse(usage_chunk_json(m, usage));
  EXPECT_EQ(last["system_fingerprint"], "fp_0123456789ab");
  EXPECT_EQ(last["usage"]["completion_tokens_details"]["reasoning_tokens"], usage.reasoning_tokens);
}

}  // namespace
}  // namespace v4::router
