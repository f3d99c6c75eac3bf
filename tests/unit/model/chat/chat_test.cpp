// Chat rendering (spec §5.8) and the Python-compatible JSON it embeds. Expected prompts are the
// output of DeepSeek's official encoder (encoding_dsv4.encode_messages) for the same
// conversations; the full oracle comparison is tests/python/test_chat_render.py.
#include <gtest/gtest.h>

#include "model/chat/chat_encoder.h"
#include "model/chat/chat_json.h"
#include "model/chat/chat_request.h"

namespace v4 {
namespace {

std::string render(const std::string& json) {
  Result<ChatRequest> request = parse_chat_request(json);
  EXPECT_TRUE(request.is_ok()) << request.message();
  if (!request) return {};
  Result<std::string> prompt = render_chat_prompt(*request);
  EXPECT_TRUE(prompt.is_ok()) << prompt.message();
  return prompt ? *prompt : std::string();
}

// Expected values: Python 3.11 repr(float).
TEST(PythonJson, FloatsPrintLikePythonRepr) {
  EXPECT_EQ(python_float_repr(1.0), "1.0");
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(1e-05), "1e-05");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(python_float_repr(123456789012345.6), "123456789012345.6");
  EXPECT_EQ(python_float_repr(-0.0), "-0.0");
  EXPECT_EQ(python_float_repr(2.5e-300), "2.5e-300");
  EXPECT_EQ(python_float_repr(1.7976931348623157e308), "1.7976931348623157e+308");
}

// Expected values: json.dumps(json.loads(text), ensure_ascii=False).
TEST(PythonJson, DumpsLikeJsonDumps) {
  const auto dumps = [](const char* text) { return python_json_dumps(OrderedJson::parse(text)); };
  EXPECT_EQ(dumps(R"({"b":1,"a":[true,null,2.50,"x\u0001\n\"é"],"c":{}})"),
            R"({"b": 1, "a": [true, null, 2.5, "x\u0001\n\"é"], "c": {}})");
  EXPECT_EQ(dumps("[1E2, -0, 12345678901234567890, []]"), "[100.0, 0, 12345678901234567890, []]");
  EXPECT_EQ(dumps(R"("\u2028\t\u007f")"), "\"\u2028\\t\x7f\"");
}

TEST(ChatRender, OldReasoningIsDroppedBeforeTheLastUserMessage) {
  EXPECT_EQ(render(R"({"thinking": true, "messages": [{"role": "system", "content": "S"},
      {"role": "user", "content": "a"},
      {"role": "assistant", "content": "b", "reasoning_content": "r1"},
      {"role": "user", "content": "c"}]})"),
            "<｜begin▁of▁sentence｜>S<｜User｜>a<｜Assistant｜></think>b<｜end▁of▁sentence｜>"
            "<｜User｜>c<｜Assistant｜><think>");
}

TEST(ChatRender, ToolCallsAndResultsInCallOrder) {
  EXPECT_EQ(render(R"({"messages": [{"role": "user", "content": "go"},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "x", "type": "function", "function": {"name": "f", "arguments": "{\"q\": \"s\", \"n\": 2}"}},
        {"id": "y", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "y", "content": "Y"},
      {"role": "tool", "tool_call_id": "x", "content": "X"}]})"),
            "<｜begin▁of▁sentence｜><｜User｜>go<｜Assistant｜></think>\n\n<｜DSML｜tool_calls>\n"
            "<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"q\" string=\"true\">s"
            "</｜DSML｜parameter>\n<｜DSML｜parameter name=\"n\" string=\"false\">2"
            "</｜DSML｜parameter>\n</｜DSML｜invoke>\n<｜DSML｜invoke name=\"g\">\n\n"
            "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜><｜User｜>"
            "<tool_result>X</tool_result>\n\n<tool_result>Y</tool_result><｜Assistant｜></think>");
}

TEST(ChatRender, MaxEffortPrefixAndReminderAfterTheAssistantPrefix) {
  const std::string prompt = render(R"({"thinking": true, "reasoning_effort": "max",
      "messages": [{"role": "user", "content": "hi"},
                   {"role": "latest_reminder", "content": "R"}]})");
  EXPECT_EQ(prompt.rfind("<｜begin▁of▁sentence｜>Reasoning Effort: Absolute maximum", 0), 0u);
  EXPECT_TRUE(
      prompt.ends_with("unchecked.\n\n<｜User｜>hi<｜Assistant｜><think>"
                       "<｜latest_reminder｜>R"));
}

TEST(ChatRender, ToolsGoToTheSystemTextWithPythonJson) {
  const std::string prompt = render(R"({"messages": [{"role": "user", "content": "q"}],
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {"x": 1.0e1}}}]})");
  EXPECT_NE(prompt.find("### Available Tool Schemas\n\n{\"name\": \"f\", \"parameters\": "
                        "{\"x\": 10.0}}\n\nYou MUST strictly follow"),
            std::string::npos);
  EXPECT_EQ(prompt.rfind("<｜begin▁of▁sentence｜>\n\n## Tools\n\n", 0), 0u);
}

TEST(ChatRender, ReplayUsesTheRecordedDsmlBytes) {
  const std::string recorded =
      "<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"n\" string=\"false\">2.0"
      "</｜DSML｜parameter>\n</｜DSML｜invoke>";
  nlohmann::json request = nlohmann::json::parse(R"({"messages": [
      {"role": "user", "content": "go"},
      {"role": "assistant", "content": "", "tool_calls": [{"id": "x", "type": "function",
        "function": {"name": "f", "arguments": "{\"n\": 2}"}}]}]})");
  request["dsml_replay"]["x"] = recorded;
  const std::string prompt = render(request.dump());
  EXPECT_NE(prompt.find("<｜DSML｜tool_calls>\n" + recorded + "\n</｜DSML｜tool_calls>"),
            std::string::npos);
}

TEST(ChatRender, ArgumentsThatAreNotJsonBecomeOneParameter) {
  ChatToolCall call{"id", "f", "not json", true};
  EXPECT_EQ(render_dsml_invoke(call).value(),
            "<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"arguments\" string=\"true\">"
            "not json</｜DSML｜parameter>\n</｜DSML｜invoke>");
  call.arguments = "[1]";
  EXPECT_FALSE(render_dsml_invoke(call).is_ok());
}

TEST(ChatRequest, ErrorsNameTheMember) {
  EXPECT_NE(parse_chat_request("{}").message().find("messages"), std::string::npos);
  EXPECT_NE(parse_chat_request(R"({"messages": [{"role": 1}]})").message().find("messages[0].role"),
            std::string::npos);
  EXPECT_NE(parse_chat_request(R"({"messages": [{"role": "user", "content": 5}]})")
                .message()
                .find("content"),
            std::string::npos);
  EXPECT_NE(parse_chat_request(R"({"messages": [{"role": "user"}], "thinking": "yes"})")
                .message()
                .find("thinking"),
            std::string::npos);
}

}  // namespace
}  // namespace v4
