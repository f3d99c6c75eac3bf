// Responses API output from real DeepSeek-V4 output tokens: the stream's event order as OpenAI
// documents it (response.created, response.in_progress, each output item's added / parts /
// deltas / done, response.completed, with consecutive sequence numbers), that what a client
// assembles from the events is the final response's output, whole responses, incomplete and
// failed responses, and what a finished response leaves in the store.
#include "router/responses/responses_writer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/chat/chat_encoder.h"
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

  // Each event's data, checked to be "event: TYPE\ndata: {...TYPE...}\n\n".
  std::vector<Json> parsed() const {
    std::vector<Json> out;
    for (const std::string& event : events) {
      EXPECT_TRUE(event.starts_with("event: ")) << event;
      EXPECT_TRUE(event.ends_with("\n\n")) << event;
      const size_t newline = event.find('\n');
      const std::string name = event.substr(7, newline - 7);
      EXPECT_EQ(event.compare(newline + 1, 6, "data: "), 0) << event;
      const Json data = Json::parse(event.substr(newline + 7));
      EXPECT_EQ(data["type"], name) << event;
      out.push_back(data);
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

ResponsesMeta meta(bool store = false) {
  ResponsesMeta m;
  m.id = "resp_test";
  m.created_at = 1700000000;
  m.echo = {{"instructions", nullptr}, {"model", "tiny"}, {"tools", RequestJson::array()}};
  m.store = store;
  ChatMessage user;
  user.role = "user";
  user.content = "Weather?";
  m.conversation = {user};
  return m;
}

class ResponsesWriterTest : public DeepSeekTest {
 protected:
  static ChoiceOutput make(bool thinking, bool tools) {
    ChoiceOutputOptions options;
    options.thinking = thinking;
    options.parse_tools = tools;
    options.tool_call_id_prefix = "call_test_";
    Result<ChoiceOutput> choice = ChoiceOutput::create(tok(), std::move(options));
    EXPECT_TRUE(choice.is_ok()) << choice.message();
    return std::move(choice).value();
  }
  // Feeds `text` token by token, then `last`; a stream writer gets every delta.
  static void run(ChoiceOutput& output, const std::string& text, EngineEvent last,
                  ResponsesWriter* writer, RecordingExchange& exchange) {
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
    usage.reasoning_tokens = output.reasoning_tokens();
    return usage;
  }
};

// Assembles a stream the way OpenAI's SDK does, checking the documented order as it goes;
// returns the items and the terminal event.
struct Assembled {
  std::vector<Json> items;
  Json terminal;
};

Assembled assemble(const std::vector<Json>& events) {
  Assembled out;
  EXPECT_GE(events.size(), 3u);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i]["sequence_number"], i);
  EXPECT_EQ(events[0]["type"], "response.created");
  EXPECT_EQ(events[1]["type"], "response.in_progress");
  for (size_t i : {0, 1}) {
    EXPECT_EQ(events[i]["response"]["status"], "in_progress");
    EXPECT_EQ(events[i]["response"]["output"], Json::array());
  }
  bool open = false, part_open = false;
  for (size_t i = 2; i + 1 < events.size(); ++i) {
    const Json& e = events[i];
    const std::string type = e["type"];
    SCOPED_TRACE(e.dump());
    if (type == "response.output_item.added") {
      EXPECT_FALSE(open) << "an item was added before the previous one was done";
      EXPECT_EQ(e["output_index"], out.items.size());
      EXPECT_EQ(e["item"]["status"], "in_progress");
      out.items.push_back(e["item"]);
      open = true;
      continue;
    }
    if (!open) {
      ADD_FAILURE() << "an event outside an item";
      return out;
    }
    Json& item = out.items.back();
    EXPECT_EQ(e["output_index"], out.items.size() - 1);
    if (type != "response.output_item.done") {
      EXPECT_EQ(e["item_id"], item["id"]);
    }
    if (type == "response.content_part.added") {
      EXPECT_FALSE(part_open);
      EXPECT_EQ(e["content_index"], item["content"].size());
      item["content"].push_back(e["part"]);
      part_open = true;
    } else if (type == "response.reasoning_text.delta" || type == "response.output_text.delta") {
      EXPECT_TRUE(part_open);
      Json& part = item["content"][e["content_index"].get<size_t>()];
      EXPECT_EQ(part["type"],
                type == "response.reasoning_text.delta" ? "reasoning_text" : "output_text");
      part["text"] = part["text"].get<std::string>() + e["delta"].get<std::string>();
    } else if (type == "response.reasoning_text.done" || type == "response.output_text.done") {
      EXPECT_EQ(item["content"][e["content_index"].get<size_t>()]["text"], e["text"]);
    } else if (type == "response.content_part.done") {
      EXPECT_EQ(item["content"][e["content_index"].get<size_t>()], e["part"]);
      part_open = false;
    } else if (type == "response.function_call_arguments.delta") {
      EXPECT_EQ(item["type"], "function_call");
      item["arguments"] = item["arguments"].get<std::string>() + e["delta"].get<std::string>();
    } else if (type == "response.function_call_arguments.done") {
      EXPECT_EQ(item["arguments"], e["arguments"]);
    } else if (type == "response.output_item.done") {
      EXPECT_FALSE(part_open);
      Json done = e["item"];
      Json assembled = item;
      assembled.erase("status");
      done.erase("status");
      EXPECT_EQ(assembled, done);
      item = e["item"];
      open = false;
    } else {
      ADD_FAILURE() << "unexpected event " << type;
    }
  }
  EXPECT_FALSE(open);
  out.terminal = events.back();
  return out;
}

TEST_F(ResponsesWriterTest, StreamEventsComeInOpenAisOrder) {
  auto store = std::make_shared<ResponseStore>(1 << 20);
  ResponsesMeta m = meta(/*store=*/true);
  m.id = store->new_id(true);
  ResponsesWriter writer(m, /*stream=*/true, store);
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

  const Assembled got = assemble(exchange.parsed());
  ASSERT_EQ(got.items.size(), 3u);
  EXPECT_EQ(got.items[0]["type"], "reasoning");
  EXPECT_TRUE(got.items[0]["id"].get<std::string>().starts_with("rs_"));
  EXPECT_EQ(got.items[0]["content"],
            Json::parse(R"([{"type":"reasoning_text","text":"Let me check the weather."}])"));
  EXPECT_EQ(got.items[1]["type"], "message");
  EXPECT_EQ(got.items[1]["role"], "assistant");
  EXPECT_EQ(got.items[1]["content"][0]["text"], "Checking now.");
  EXPECT_EQ(got.items[2]["type"], "function_call");
  EXPECT_TRUE(got.items[2]["id"].get<std::string>().starts_with("fc_"));
  EXPECT_EQ(got.items[2]["call_id"], "call_test_0");
  EXPECT_EQ(got.items[2]["name"], "get_weather");
  EXPECT_EQ(Json::parse(got.items[2]["arguments"].get<std::string>()),
            Json({{"city", "Paris \"FR\""}, {"days", 3}}));
  for (const Json& item : got.items) EXPECT_EQ(item["status"], "completed");
  const Json& done = got.terminal;
  EXPECT_EQ(done["type"], "response.completed");
  EXPECT_EQ(done["response"]["id"], m.id);
  EXPECT_EQ(done["response"]["object"], "response");
  EXPECT_EQ(done["response"]["status"], "completed");
  EXPECT_EQ(done["response"]["model"], "tiny");
  EXPECT_EQ(done["response"]["output"], Json(got.items));
  EXPECT_EQ(done["response"]["usage"]["input_tokens"], 11);
  EXPECT_EQ(done["response"]["usage"]["output_tokens"], output.completion_tokens());
  EXPECT_EQ(done["response"]["usage"]["output_tokens_details"]["reasoning_tokens"],
            output.reasoning_tokens());
  EXPECT_EQ(done["response"]["usage"]["total_tokens"], 11 + output.completion_tokens());

  // Kept: the object GET returns, and the conversation with the output and its exact DSML.
  const StoreLookup stored = store->find(m.id);
  ASSERT_EQ(stored.state, StoredState::kFound);
  EXPECT_EQ(Json::parse(stored.response->response_json), done["response"]);
  ASSERT_EQ(stored.response->conversation.size(), 2u);
  const ChatMessage& assistant = stored.response->conversation[1];
  EXPECT_EQ(assistant.role, "assistant");
  EXPECT_EQ(assistant.reasoning, "Let me check the weather.");
  EXPECT_EQ(assistant.content, "Checking now.");
  ASSERT_EQ(assistant.tool_calls.size(), 1u);
  EXPECT_EQ(assistant.tool_calls[0].id, "call_test_0");
  EXPECT_EQ(stored.response->tool_call_dsml.at("call_test_0").find(kInvoke), 0u);
}

TEST_F(ResponsesWriterTest, WholeResponseMatchesTheStreamedOne) {
  const std::string text = "Short thought." + std::string(kThinkEndText) + "The answer.";
  ChoiceOutput streamed = make(true, false), whole = make(true, false);
  ResponsesWriter stream_writer(meta(), /*stream=*/true, nullptr);
  RecordingExchange a, b;
  stream_writer.open(a);
  run(streamed, text, finish(EngineFinish::kStop, tok().eos_id()), &stream_writer, a);
  stream_writer.complete(a, {&streamed}, usage_of(streamed), {});
  ResponsesWriter whole_writer(meta(), /*stream=*/false, nullptr);
  run(whole, text, finish(EngineFinish::kStop, tok().eos_id()), nullptr, b);
  whole_writer.complete(b, {&whole}, usage_of(whole), {});
  EXPECT_EQ(b.status, 200);
  EXPECT_FALSE(b.streaming);
  Json body = Json::parse(b.body);
  Json final = assemble(a.parsed()).terminal["response"];
  for (Json* r : {&body, &final}) {
    for (Json& item : (*r)["output"]) item.erase("id");  // fresh per response
  }
  EXPECT_EQ(body, final);
  EXPECT_EQ(body["output"].size(), 2u);
  EXPECT_EQ(body["output"][1]["content"][0]["text"], "The answer.");
  EXPECT_EQ(body["status"], "completed");
  EXPECT_EQ(body["incomplete_details"], nullptr);
  EXPECT_EQ(body["instructions"], nullptr);  // echoed members
}

TEST_F(ResponsesWriterTest, LengthLimitMakesAnIncompleteResponse) {
  ChoiceOutput output = make(/*thinking=*/true, /*tools=*/false);
  ResponsesWriter writer(meta(), /*stream=*/true, nullptr);
  RecordingExchange exchange;
  writer.open(exchange);
  run(output, "Still thinking about", finish(EngineFinish::kLength), &writer, exchange);
  writer.complete(exchange, {&output}, usage_of(output), {});
  const Assembled got = assemble(exchange.parsed());
  EXPECT_EQ(got.terminal["type"], "response.incomplete");
  EXPECT_EQ(got.terminal["response"]["status"], "incomplete");
  EXPECT_EQ(got.terminal["response"]["incomplete_details"]["reason"], "max_output_tokens");
  // The reasoning that was cut, and the (empty) message every response without calls has.
  ASSERT_EQ(got.items.size(), 2u);
  EXPECT_EQ(got.items[0]["type"], "reasoning");
  EXPECT_EQ(got.items[0]["status"], "incomplete");
  EXPECT_EQ(got.items[1]["type"], "message");
  EXPECT_EQ(got.items[1]["content"][0]["text"], "");

  const Json whole = Json::parse(
      response_object(meta(), response_status(output), output_items(output), nullptr).dump());
  EXPECT_EQ(whole["status"], "incomplete");
  EXPECT_EQ(whole["output"].back()["status"], "incomplete");
}

TEST_F(ResponsesWriterTest, NothingGeneratedStillGivesAMessage) {
  ChoiceOutput output = make(false, false);
  ResponsesWriter writer(meta(), /*stream=*/true, nullptr);
  RecordingExchange exchange;
  writer.open(exchange);
  run(output, "", finish(EngineFinish::kStop, tok().eos_id()), &writer, exchange);
  writer.complete(exchange, {&output}, usage_of(output), {});
  const Assembled got = assemble(exchange.parsed());
  ASSERT_EQ(got.items.size(), 1u);
  EXPECT_EQ(got.items[0]["type"], "message");
  EXPECT_EQ(got.terminal["type"], "response.completed");
}

// A client may name a response in its next request the moment it has it: the response is in
// the store before its body, or its stream's last event, goes out.
TEST_F(ResponsesWriterTest, StoredBeforeTheClientHearsOfIt) {
  class CheckingExchange : public RecordingExchange {
   public:
    CheckingExchange(ResponseStore& store, std::string id) : store_(store), id_(std::move(id)) {}
    void respond(int status_code, std::string content_type, std::string text,
                 HttpHeaders headers) override {
      stored_when_sent = store_.find(id_).state == StoredState::kFound;
      RecordingExchange::respond(status_code, std::move(content_type), std::move(text),
                                 std::move(headers));
    }
    void send_event(std::string data) override {
      if (data.find("response.completed") != std::string::npos)
        stored_when_sent = store_.find(id_).state == StoredState::kFound;
      RecordingExchange::send_event(std::move(data));
    }
    bool stored_when_sent = false;

   private:
    ResponseStore& store_;
    std::string id_;
  };
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream);
    auto store = std::make_shared<ResponseStore>(1 << 20);
    ResponsesMeta m = meta(/*store=*/true);
    m.id = store->new_id(true);
    ResponsesWriter writer(m, stream, store);
    CheckingExchange exchange(*store, m.id);
    if (stream) writer.open(exchange);
    ChoiceOutput output = make(false, false);
    run(output, "Done.", finish(EngineFinish::kStop, tok().eos_id()), stream ? &writer : nullptr,
        exchange);
    writer.complete(exchange, {&output}, usage_of(output), {});
    EXPECT_TRUE(exchange.stored_when_sent);
  }
}

TEST_F(ResponsesWriterTest, ErrorsBeforeAndAfterTheStreamStarts) {
  ResponsesWriter whole(meta(), /*stream=*/false, nullptr);
  RecordingExchange a;
  whole.fail(a, invalid_request("Invalid 'input': bad", "input"));
  EXPECT_EQ(a.status, 400);
  const Json error = Json::parse(a.body)["error"];
  EXPECT_EQ(error["type"], "invalid_request_error");
  EXPECT_EQ(error["param"], "input");

  ResponsesWriter stream(meta(), /*stream=*/true, nullptr);
  RecordingExchange b;
  stream.open(b);
  ChoiceOutput output = make(false, false);
  run(output, "Partial", finish(EngineFinish::kNone), &stream, b);
  stream.fail(b, server_error("engine failed"));
  const auto events = b.parsed();
  EXPECT_EQ(events.back()["type"], "response.failed");
  EXPECT_EQ(events.back()["response"]["status"], "failed");
  EXPECT_EQ(events.back()["response"]["error"]["code"], "server_error");
  EXPECT_EQ(events.back()["response"]["error"]["message"], "engine failed");
  // The open message was closed before the end, so a client holds no half item.
  const Assembled got = assemble(events);
  ASSERT_EQ(got.items.size(), 1u);
  EXPECT_EQ(got.items[0]["status"], "incomplete");
  EXPECT_TRUE(b.ended);

  RecordingExchange c;
  ResponsesWriter draining(meta(), /*stream=*/false, nullptr);
  EXPECT_EQ(draining.shutdown(c, {}, Usage{}), 503);
  EXPECT_EQ(Json::parse(c.body)["error"]["type"], "server_error");
}

}  // namespace
}  // namespace v4::router
