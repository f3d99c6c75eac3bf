// Messages API responses from real DeepSeek-V4 output tokens: the stream's event order as
// Anthropic documents it (message_start, ping, content blocks with their deltas, message_delta,
// message_stop), what a client assembles from it, whole bodies, stop reasons and errors.
#include "router/anthropic/messages_writer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/chat/chat_encoder.h"
#include "router/anthropic/anthropic_error.h"
#include "tests/unit/common/deepseek_tokenizer.h"

namespace v4::router {
namespace {

using test_support::DeepSeekTest;
using Json = nlohmann::json;

// Records what a writer sends, as the HTTP layer would carry it.
class RecordingExchange : public HttpExchange {
 public:
  void respond(int status_code, std::string content_type, std::string text,
               HttpHeaders headers) override {
    (void)content_type, (void)headers;
    status = status_code;
    body = std::move(text);
  }
  void start_events(int status_code, HttpHeaders headers) override {
    (void)headers;
    status = status_code;
    streaming = true;
  }
  void send_event(std::string data) override { events.push_back(std::move(data)); }
  void end_events() override { ended = true; }
  void on_disconnect(std::function<void()> callback) override { (void)callback; }
  bool disconnected() const override { return false; }
  void on_finished(std::function<void(double)> callback) override { (void)callback; }

  // Each event as (name, data).
  std::vector<std::pair<std::string, Json>> parsed() const {
    std::vector<std::pair<std::string, Json>> out;
    for (const std::string& event : events) {
      EXPECT_TRUE(event.starts_with("event: ")) << event;
      EXPECT_TRUE(event.ends_with("\n\n")) << event;
      const size_t newline = event.find('\n');
      const std::string name = event.substr(7, newline - 7);
      const std::string data_prefix = "data: ";
      EXPECT_EQ(event.compare(newline + 1, data_prefix.size(), data_prefix), 0) << event;
      const Json data = Json::parse(event.substr(newline + 1 + data_prefix.size()));
      EXPECT_EQ(data["type"], name) << event;  // Anthropic's events name their own type
      out.emplace_back(name, data);
    }
    return out;
  }

  int status = 0;
  std::string body;
  bool streaming = false;
  bool ended = false;
  std::vector<std::string> events;
};

const std::string kD = kDsmlText;
const std::string kInvoke = "<" + kD + "invoke name=\"get_weather\">\n<" + kD +
                            "parameter name=\"city\" string=\"true\">Paris \"FR\"</" + kD +
                            "parameter>\n<" + kD + "parameter name=\"days\" string=\"false\">3</" +
                            kD + "parameter>\n</" + kD + "invoke>";

EngineEvent token(int32_t id) {
  EngineEvent event;
  event.token = id;
  return event;
}

EngineEvent finish(EngineFinish reason, int32_t id = -1) {
  EngineEvent event;
  event.token = id;
  event.finish = reason;
  return event;
}

class MessagesWriterTest : public DeepSeekTest {
 protected:
  static ChoiceOutput make(bool thinking, bool tools, std::vector<std::string> stop = {}) {
    ChoiceOutputOptions options;
    options.thinking = thinking;
    options.parse_tools = tools;
    options.stop = std::move(stop);
    options.tool_call_id_prefix = "toolu_test_";
    Result<ChoiceOutput> choice = ChoiceOutput::create(tok(), std::move(options));
    EXPECT_TRUE(choice.is_ok()) << choice.message();
    return std::move(choice).value();
  }
  // Feeds `text` token by token, then `last`; a stream writer gets every delta.
  static void run(ChoiceOutput& output, const std::string& text, EngineEvent last,
                  MessagesWriter* writer, RecordingExchange& exchange) {
    std::vector<EngineEvent> events;
    for (TokenId id : tok().encode(text, /*allow_special=*/true)) events.push_back(token(id));
    events.push_back(std::move(last));
    for (const EngineEvent& event : events) {
      const ChoiceDelta delta = output.push(event);
      if (writer != nullptr) writer->delta(exchange, 0, delta, output);
    }
  }
  static Usage usage_of(const ChoiceOutput& output) {
    Usage usage;
    usage.prompt_tokens = 11;
    usage.completion_tokens = output.completion_tokens();
    return usage;
  }
};

TEST_F(MessagesWriterTest, StreamEventsComeInAnthropicsOrder) {
  const MessageMeta meta{"msg_test", "tiny", 11};
  MessagesWriter writer(meta, /*stream=*/true);
  RecordingExchange exchange;
  writer.open(exchange);
  ChoiceOutput output = make(/*thinking=*/true, /*tools=*/true);
  const std::string text = "Let me check the weather." + std::string(kThinkEndText) +
                           "Checking now.\n\n<" + kD + "tool_calls>\n" + kInvoke + "\n</" + kD +
                           "tool_calls>";
  run(output, text, finish(EngineFinish::kStop, tok().eos_id()), &writer, exchange);
  ASSERT_TRUE(output.done());
  writer.complete(exchange, {&output}, usage_of(output), {});
  EXPECT_TRUE(exchange.streaming);
  EXPECT_TRUE(exchange.ended);

  // Assemble the way Anthropic's SDK does, checking the order as it goes.
  const auto events = exchange.parsed();
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events[0].first, "message_start");
  EXPECT_EQ(events[0].second["message"]["id"], "msg_test");
  EXPECT_EQ(events[0].second["message"]["content"], Json::array());
  EXPECT_EQ(events[0].second["message"]["usage"]["input_tokens"], 11);
  EXPECT_EQ(events[1].first, "ping");
  std::vector<Json> blocks;
  int open = -1;
  size_t i = 2;
  for (; i < events.size() && events[i].first.starts_with("content_block"); ++i) {
    const auto& [name, data] = events[i];
    if (name == "content_block_start") {
      ASSERT_EQ(open, -1) << "a block started before the previous one stopped";
      ASSERT_EQ(data["index"], blocks.size());
      open = data["index"];
      blocks.push_back(data["content_block"]);
      if (blocks.back()["type"] == "tool_use") blocks.back()["partial"] = "";
    } else if (name == "content_block_delta") {
      ASSERT_EQ(data["index"], open);
      const Json& delta = data["delta"];
      Json& block = blocks.back();
      if (delta["type"] == "thinking_delta") {
        ASSERT_EQ(block["type"], "thinking");
        block["thinking"] =
            block["thinking"].get<std::string>() + delta["thinking"].get<std::string>();
      } else if (delta["type"] == "signature_delta") {
        ASSERT_EQ(block["type"], "thinking");
        block["signature"] = delta["signature"];
      } else if (delta["type"] == "text_delta") {
        ASSERT_EQ(block["type"], "text");
        block["text"] = block["text"].get<std::string>() + delta["text"].get<std::string>();
      } else {
        ASSERT_EQ(delta["type"], "input_json_delta");
        ASSERT_EQ(block["type"], "tool_use");
        block["partial"] =
            block["partial"].get<std::string>() + delta["partial_json"].get<std::string>();
      }
    } else {
      ASSERT_EQ(data["index"], open);
      open = -1;
    }
  }
  EXPECT_EQ(open, -1);
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[0]["type"], "thinking");
  EXPECT_EQ(blocks[0]["thinking"], "Let me check the weather.");
  EXPECT_EQ(blocks[0]["signature"], thinking_signature("Let me check the weather."));
  EXPECT_EQ(blocks[1], Json({{"type", "text"}, {"text", "Checking now."}}));
  EXPECT_EQ(blocks[2]["id"], "toolu_test_0");
  EXPECT_EQ(blocks[2]["name"], "get_weather");
  EXPECT_EQ(Json::parse(blocks[2]["partial"].get<std::string>()),
            Json({{"city", "Paris \"FR\""}, {"days", 3}}));
  ASSERT_EQ(events.size(), i + 2);
  EXPECT_EQ(events[i].first, "message_delta");
  EXPECT_EQ(events[i].second["delta"]["stop_reason"], "tool_use");
  EXPECT_EQ(events[i].second["delta"]["stop_sequence"], nullptr);
  EXPECT_EQ(events[i].second["usage"]["output_tokens"], output.completion_tokens());
  EXPECT_EQ(events[i + 1].first, "message_stop");
}

TEST_F(MessagesWriterTest, WholeMessageWithAStopSequence) {
  ChoiceOutput output = make(/*thinking=*/false, /*tools=*/false, {"END"});
  RecordingExchange unused;
  run(output, "Hello there END and more", finish(EngineFinish::kCancelled), nullptr, unused);
  ASSERT_TRUE(output.done());
  const Json body = Json::parse(message_json({"msg_1", "tiny", 7}, output, 5));
  EXPECT_EQ(body["id"], "msg_1");
  EXPECT_EQ(body["type"], "message");
  EXPECT_EQ(body["role"], "assistant");
  EXPECT_EQ(body["model"], "tiny");
  EXPECT_EQ(body["content"], Json::parse(R"([{"type":"text","text":"Hello there "}])"));
  EXPECT_EQ(body["stop_reason"], "stop_sequence");
  EXPECT_EQ(body["stop_sequence"], "END");
  EXPECT_EQ(body["usage"], Json::parse(R"({"input_tokens":7,"output_tokens":5})"));
}

TEST_F(MessagesWriterTest, StopReasons) {
  RecordingExchange unused;
  ChoiceOutput eos = make(false, false);
  run(eos, "Done.", finish(EngineFinish::kStop, tok().eos_id()), nullptr, unused);
  EXPECT_EQ(anthropic_stop_reason(eos), "end_turn");
  ChoiceOutput length = make(false, false);
  run(length, "Cut", finish(EngineFinish::kLength), nullptr, unused);
  EXPECT_EQ(anthropic_stop_reason(length), "max_tokens");
  const Json body = Json::parse(message_json({"m", "tiny", 1}, length, 1));
  EXPECT_EQ(body["stop_sequence"], nullptr);
}

TEST_F(MessagesWriterTest, WholeToolUseMessage) {
  ChoiceOutput output = make(/*thinking=*/false, /*tools=*/true);
  RecordingExchange exchange;
  MessagesWriter writer({"msg_2", "tiny", 3}, /*stream=*/false);
  run(output, "\n\n<" + kD + "tool_calls>\n" + kInvoke + "\n</" + kD + "tool_calls>",
      finish(EngineFinish::kStop, tok().eos_id()), nullptr, exchange);
  writer.complete(exchange, {&output}, usage_of(output), {});
  EXPECT_EQ(exchange.status, 200);
  const Json body = Json::parse(exchange.body);
  ASSERT_EQ(body["content"].size(), 1u) << body.dump();
  EXPECT_EQ(body["content"][0], Json({{"type", "tool_use"},
                                      {"id", "toolu_test_0"},
                                      {"name", "get_weather"},
                                      {"input", {{"city", "Paris \"FR\""}, {"days", 3}}}}));
  EXPECT_EQ(body["stop_reason"], "tool_use");
}

TEST_F(MessagesWriterTest, ErrorsBeforeAndAfterTheStreamStarts) {
  MessagesWriter whole({"m", "tiny", 1}, /*stream=*/false);
  RecordingExchange a;
  whole.fail(a, invalid_request("messages.0: bad"));
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(Json::parse(a.body), Json::parse(R"({"type":"error","error":{
      "type":"invalid_request_error","message":"messages.0: bad"}})"));

  MessagesWriter stream({"m", "tiny", 1}, /*stream=*/true);
  RecordingExchange b;
  stream.open(b);
  stream.fail(b, server_error("engine failed"));
  const auto events = b.parsed();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].first, "error");
  EXPECT_EQ(events[2].second["error"]["type"], "api_error");
  EXPECT_TRUE(b.ended);

  RecordingExchange c;
  MessagesWriter draining({"m", "tiny", 1}, /*stream=*/false);
  EXPECT_EQ(draining.shutdown(c, {}, Usage{}), 503);
  EXPECT_EQ(Json::parse(c.body)["error"]["type"], "overloaded_error");
}

TEST(AnthropicError, StatusDecidesTheType) {
  const std::vector<std::tuple<ApiError, int, std::string>> cases = {
      {invalid_request("x"), 400, "invalid_request_error"},
      {unauthorized("x"), 401, "authentication_error"},
      {not_found("x"), 404, "not_found_error"},
      {too_large("x"), 413, "request_too_large"},
      // The queue limit is overload: Anthropic's 529.
      {overloaded("x"), 529, "overloaded_error"},
      {server_error("x"), 500, "api_error"},
      {server_error("x", 503), 503, "overloaded_error"},
  };
  for (const auto& [error, status, type] : cases) {
    const ErrorReply reply = anthropic_error_reply(error);
    EXPECT_EQ(reply.status, status);
    const Json body = Json::parse(reply.body);
    EXPECT_EQ(body, Json({{"type", "error"}, {"error", {{"type", type}, {"message", "x"}}}}));
  }
}

}  // namespace
}  // namespace v4::router
