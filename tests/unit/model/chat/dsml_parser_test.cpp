// DSML output parsing (spec §5.8): markers by token id, streamed splits at every byte, parallel
// calls, OpenAI JSON arguments, malformed markup as content, and replay of the exact bytes.
#include "model/chat/dsml_parser.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "model/chat/chat_encoder.h"

namespace v4 {
namespace {

constexpr TokenId kDsml = 128825, kThinkEnd = 128822, kEos = 1;

DsmlParserOptions options(bool thinking) {
  DsmlParserOptions o;
  o.thinking = thinking;
  o.dsml_token = kDsml;
  o.think_end_token = kThinkEnd;
  o.eos_token = kEos;
  return o;
}

// What a client would assemble from the events.
struct Collected {
  std::string reasoning, content;
  struct Call {
    std::string name, id, arguments, dsml;
    bool ended = false;
  };
  std::vector<Call> calls;
  std::vector<std::string> warnings;
};

// Feeds `output` where the marker strings stand for their special tokens; other text goes in
// chunks of `chunk` bytes (1 = byte by byte, splitting UTF-8 sequences too).
Collected parse(const std::string& output, bool thinking, size_t chunk) {
  DsmlParser parser(options(thinking));
  std::vector<DsmlEvent> events;
  const std::pair<std::string, TokenId> markers[] = {
      {kDsmlText, kDsml}, {kThinkEndText, kThinkEnd}, {kEosText, kEos}};
  size_t pos = 0;
  while (pos < output.size()) {
    bool marker = false;
    for (const auto& [text, id] : markers) {
      if (output.compare(pos, text.size(), text) == 0) {
        parser.feed(id, text, events);
        pos += text.size();
        marker = true;
        break;
      }
    }
    if (marker) continue;
    size_t end = pos + 1;
    while (end < output.size() && end - pos < chunk) {
      bool at_marker = false;
      for (const auto& [text, id] : markers)
        at_marker |= output.compare(end, text.size(), text) == 0;
      if (at_marker) break;
      ++end;
    }
    parser.feed(-1, std::string_view(output).substr(pos, end - pos), events);
    pos = end;
  }
  parser.finish(events);
  Collected out;
  for (const DsmlEvent& e : events) {
    switch (e.kind) {
      case DsmlEvent::Kind::kReasoningDelta:
        out.reasoning += e.text;
        break;
      case DsmlEvent::Kind::kContentDelta:
        out.content += e.text;
        break;
      case DsmlEvent::Kind::kToolCallBegin:
        EXPECT_EQ(e.index, static_cast<int>(out.calls.size()));
        out.calls.emplace_back();
        out.calls.back().name = e.name;
        out.calls.back().id = e.id;
        break;
      case DsmlEvent::Kind::kToolCallArgumentsDelta:
        EXPECT_FALSE(out.calls.empty());
        if (!out.calls.empty()) {
          EXPECT_EQ(e.id, out.calls.back().id);
          out.calls.back().arguments += e.text;
        }
        break;
      case DsmlEvent::Kind::kToolCallEnd:
        EXPECT_FALSE(out.calls.empty());
        if (!out.calls.empty()) {
          out.calls.back().ended = true;
          out.calls.back().dsml = e.dsml;
        }
        break;
      case DsmlEvent::Kind::kWarning:
        out.warnings.push_back(e.text);
        break;
    }
  }
  return out;
}

const std::string kD = kDsmlText;
const std::string kInvokeWeather = "<" + kD + "invoke name=\"get_weather\">\n<" + kD +
                                   "parameter name=\"city\" string=\"true\">東京 \"quoted\"\n"
                                   "a<b</" +
                                   kD + "parameter>\n<" + kD +
                                   "parameter name=\"days\" string=\"false\">3</" + kD +
                                   "parameter>\n</" + kD + "invoke>";
const std::string kInvokeSearch = "<" + kD + "invoke name=\"search\">\n<" + kD +
                                  "parameter name=\"filters\" string=\"false\">{\"site\": "
                                  "[\"a\", 1.5]}</" +
                                  kD + "parameter>\n</" + kD + "invoke>";

std::string tool_output(bool thinking) {
  return std::string(thinking ? "Let me think 🤔.</think>" : "") + "Checking both.\n\n<" + kD +
         "tool_calls>\n" + kInvokeWeather + "\n" + kInvokeSearch + "\n</" + kD + "tool_calls>" +
         kEosText;
}

TEST(DsmlParser, ParallelToolCallsWithOpenAiArgumentsAtEverySplit) {
  for (size_t chunk : {1u, 2u, 3u, 7u, 1000u}) {
    SCOPED_TRACE(chunk);
    const Collected got = parse(tool_output(true), true, chunk);
    EXPECT_EQ(got.reasoning, "Let me think 🤔.");
    EXPECT_EQ(got.content, "Checking both.");
    ASSERT_EQ(got.calls.size(), 2u);
    EXPECT_EQ(got.calls[0].name, "get_weather");
    EXPECT_EQ(got.calls[0].id, "call_0");
    EXPECT_EQ(got.calls[0].arguments, "{\"city\": \"東京 \\\"quoted\\\"\\na<b\", \"days\": 3}");
    EXPECT_EQ(got.calls[1].arguments, "{\"filters\": {\"site\": [\"a\", 1.5]}}");
    EXPECT_TRUE(got.calls[0].ended && got.calls[1].ended);
    EXPECT_EQ(got.calls[0].dsml, kInvokeWeather);
    EXPECT_EQ(got.calls[1].dsml, kInvokeSearch);
    EXPECT_TRUE(got.warnings.empty());
    for (const auto& call : got.calls) {
      EXPECT_FALSE(nlohmann::json::parse(call.arguments, nullptr, false).is_discarded());
    }
  }
}

TEST(DsmlParser, NonThinkingOutputIsContent) {
  const Collected got = parse("Hello\n\nworld <b>bold</b> a</" + std::string(kEosText), false, 1);
  EXPECT_EQ(got.content, "Hello\n\nworld <b>bold</b> a</");
  EXPECT_TRUE(got.calls.empty());
}

TEST(DsmlParser, MarkupTypedAsTextIsProse) {
  // "｜DSML｜" spelled with ordinary tokens is not the special token: feed it as text.
  DsmlParser parser(options(false));
  std::vector<DsmlEvent> events;
  parser.feed(-1, "see <" + kD + "tool_calls> here", events);
  parser.finish(events);
  std::string content;
  for (const auto& e : events) {
    EXPECT_NE(e.kind, DsmlEvent::Kind::kToolCallBegin);
    if (e.kind == DsmlEvent::Kind::kContentDelta) content += e.text;
  }
  EXPECT_EQ(content, "see <" + kD + "tool_calls> here");
}

TEST(DsmlParser, ToolCallWithoutParameters) {
  const Collected got = parse("\n\n<" + kD + "tool_calls>\n<" + kD + "invoke name=\"now\">\n\n</" +
                                  kD + "invoke>\n</" + kD + "tool_calls>" + kEosText,
                              false, 1);
  ASSERT_EQ(got.calls.size(), 1u);
  EXPECT_EQ(got.calls[0].arguments, "{}");
  EXPECT_EQ(got.content, "");
}

TEST(DsmlParser, MalformedBlockBecomesContentWithAWarning) {
  const std::string broken = "Hi\n\n<" + kD + "tool_calls>\nnot a tag\n</" + kD + "tool_calls>";
  for (size_t chunk : {1u, 4u, 1000u}) {
    const Collected got = parse(broken + kEosText, false, chunk);
    EXPECT_TRUE(got.calls.empty());
    EXPECT_FALSE(got.warnings.empty());
    EXPECT_EQ(got.content.substr(0, 2), "Hi");
    EXPECT_NE(got.content.find("not a tag"), std::string::npos);
    EXPECT_EQ(got.content, broken.substr(0, got.content.size()));
  }
}

TEST(DsmlParser, UnknownTagAndTruncatedOutputNeverCrash) {
  const std::string cases[] = {
      "\n\n<" + kD + "tool_calls>\n<" + kD + "bogus>",
      "\n\n<" + kD + "tool_calls>\n<" + kD + "invoke name=\"f\">\n<" + kD +
          "parameter name=\"x\" string=\"true\">unterminated",
      "x<" + kD + "invoke name=\"f\">",
      "</" + kD + "tool_calls>",
      "\n\n<" + kD + "tool_calls>\n<" + kD + kD,
      "\n\n<" + kD + "tool_calls>\n<" + kD + "invoke name=\"f\">\n<" + kD +
          "parameter name=\"x\" string=\"maybe\">1</" + kD + "parameter>",
  };
  for (const std::string& output : cases) {
    for (size_t chunk : {1u, 1000u}) {
      const Collected got = parse(output, false, chunk);
      EXPECT_FALSE(got.warnings.empty()) << output;
      for (const auto& call : got.calls) EXPECT_TRUE(call.ended);
    }
  }
}

TEST(DsmlParser, OpenCallIsClosedWhenTheBlockBreaks) {
  const Collected got =
      parse("\n\n<" + kD + "tool_calls>\n<" + kD + "invoke name=\"f\">\n<" + kD +
                "parameter name=\"x\" string=\"true\">v</" + kD + "parameter>\ngarbage" + kEosText,
            false, 1);
  ASSERT_EQ(got.calls.size(), 1u);
  EXPECT_TRUE(got.calls[0].ended);
  EXPECT_NE(got.content.find("garbage"), std::string::npos);
}

TEST(DsmlParser, InvalidUtf8NeverLeaksIntoEvents) {
  const Collected got = parse("ok\xff\xe6\x97</think>x", true, 1);
  EXPECT_EQ(got.reasoning, "ok\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(got.content, "x");
}

TEST(DsmlParser, ReplayedDsmlRendersTheTurnByteIdentically) {
  // Parse a response, give its recorded DSML back to the renderer with the OpenAI tool calls a
  // client would echo, and the assistant turn re-renders exactly as the model wrote it.
  const std::string body = "Checking both.\n\n<" + kD + "tool_calls>\n" + kInvokeWeather + "\n" +
                           kInvokeSearch + "\n</" + kD + "tool_calls>";
  const Collected got = parse(body + kEosText, false, 3);
  ASSERT_EQ(got.calls.size(), 2u);
  nlohmann::json request;
  request["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", "go"}}});
  nlohmann::json assistant = {{"role", "assistant"}, {"content", got.content}};
  for (const auto& call : got.calls) {
    assistant["tool_calls"].push_back(
        {{"id", call.id},
         {"type", "function"},
         {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
    request["dsml_replay"][call.id] = call.dsml;
  }
  request["messages"].push_back(assistant);
  Result<ChatRequest> parsed = parse_chat_request(request.dump());
  ASSERT_TRUE(parsed.is_ok()) << parsed.message();
  const std::string prompt = render_chat_prompt(*parsed).value();
  EXPECT_TRUE(prompt.ends_with("<｜Assistant｜></think>" + body + kEosText)) << prompt;
}

}  // namespace
}  // namespace v4

namespace v4 {
namespace {

TEST(DsmlParser, RandomTokenSoupNeverCrashesAndClosesEveryCall) {
  const std::string fragments[] = {"<",
                                   "</",
                                   ">",
                                   "\n",
                                   "\n\n",
                                   "tool_calls>",
                                   "invoke name=\"",
                                   "\">",
                                   "parameter name=\"",
                                   "\" string=\"true\">",
                                   "\" string=\"false\">",
                                   "invoke>",
                                   "parameter>",
                                   "x",
                                   "é",
                                   "\xe6",
                                   "{\"a\": 1}",
                                   " "};
  std::mt19937 rng(5);
  for (int trial = 0; trial < 2000; ++trial) {
    DsmlParser parser(options(trial % 2 == 0));
    std::vector<DsmlEvent> events;
    for (int i = 0; i < 40; ++i) {
      const unsigned pick = rng() % 24;
      if (pick < 18) {
        parser.feed(-1, fragments[pick], events);
      } else if (pick < 22) {
        parser.feed(kDsml, kDsmlText, events);
      } else {
        parser.feed(kThinkEnd, kThinkEndText, events);
      }
    }
    parser.finish(events);
    int open = 0;
    for (const DsmlEvent& e : events) {
      if (e.kind == DsmlEvent::Kind::kToolCallBegin) ++open;
      if (e.kind == DsmlEvent::Kind::kToolCallEnd) --open;
      EXPECT_TRUE(open == 0 || open == 1);
    }
    EXPECT_EQ(open, 0);
    EXPECT_TRUE(parser.finished());
  }
}

}  // namespace
}  // namespace v4
