// The DSML tool-call grammar (spec §5.8): blocks written as the chat encoder renders calls are
// admitted; wrong names, missing or repeated parameters, invalid values, markers typed as text
// and unsupported schema keywords are not.
#include "model/grammar/dsml_tool_grammar.h"

#include <gtest/gtest.h>

#include "model/grammar/dsml_tool_matcher.h"

namespace v4 {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kM = "｜DSML｜";

std::string with_marker(std::string text) {
  // Tests write the marker as "@" for readability.
  std::string out;
  for (char c : text) {
    if (c == '@') {
      out += kM;
    } else {
      out += c;
    }
  }
  return out;
}

std::shared_ptr<const DsmlToolGrammar> grammar(const char* start, const char* tool = "",
                                               int max_calls = 0) {
  Json doc = Json::parse(R"({"marker": 7, "reasoning_end": 9, "tools": [
      {"name": "get_weather", "parameters": {"type": "object", "properties": {
          "city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7},
          "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city", "days"]}},
      {"name": "ping", "parameters": {"type": "object", "properties": {}}},
      {"name": "search", "parameters": {"type": "object", "properties": {
          "q": {"type": "string", "maxLength": 4}}, "required": ["q"]}},
      {"name": "tag", "parameters": {"type": "object", "properties": {
          "labels": {"type": "array", "items": {"type": "string"}}}, "required": ["labels"],
          "additionalProperties": false}}]})");
  doc["start"] = start;
  if (*tool) doc["tool"] = tool;
  if (max_calls > 0) doc["max_calls"] = max_calls;
  Result<DsmlToolGrammar> g = compile_dsml_tool_grammar(doc.dump());
  EXPECT_TRUE(g) << g.message();
  return std::make_shared<const DsmlToolGrammar>(g ? *g : DsmlToolGrammar());
}

bool accepts(const std::shared_ptr<const DsmlToolGrammar>& g, const std::string& text) {
  return dsml_grammar_accepts(g, with_marker(text), kM);
}

const char* kWeather =
    "<@invoke name=\"get_weather\">\n"
    "<@parameter name=\"city\" string=\"true\">Paris </ not the end</@parameter>\n"
    "<@parameter name=\"days\" string=\"false\">3</@parameter>\n"
    "</@invoke>";

TEST(DsmlToolGrammar, RequiredAcceptsOneOrMoreCalls) {
  const auto g = grammar("block");
  EXPECT_TRUE(accepts(g, std::string(kWeather) + "\n</@tool_calls>"));
  EXPECT_TRUE(accepts(
      g, std::string(kWeather) + "\n<@invoke name=\"ping\">\n\n</@invoke>" + "\n</@tool_calls>"));
  // Parameters in any order; a string schema may also come as JSON.
  EXPECT_TRUE(accepts(g,
                      "<@invoke name=\"get_weather\">\n"
                      "<@parameter name=\"unit\" string=\"false\">\"f\"</@parameter>\n"
                      "<@parameter name=\"days\" string=\"false\">7</@parameter>\n"
                      "<@parameter name=\"city\" string=\"false\">\"Oslo\"</@parameter>\n"
                      "</@invoke>\n</@tool_calls>"));
  // JSON values as the encoder writes them: Python's json.dumps separators.
  EXPECT_TRUE(accepts(g,
                      "<@invoke name=\"tag\">\n"
                      "<@parameter name=\"labels\" string=\"false\">[\"a\", \"b<c\"]</@parameter>\n"
                      "</@invoke>\n</@tool_calls>"));
  EXPECT_FALSE(accepts(g,
                       "<@invoke name=\"tag\">\n"
                       "<@parameter name=\"labels\" string=\"false\">[\"a\",\"b\"]</@parameter>\n"
                       "</@invoke>\n</@tool_calls>"));
}

TEST(DsmlToolGrammar, RejectsWrongNamesMissingAndRepeatedParameters) {
  const auto g = grammar("block");
  EXPECT_FALSE(accepts(g, "<@invoke name=\"get_weathers\">\n\n</@invoke>\n</@tool_calls>"));
  EXPECT_FALSE(accepts(g, "<@invoke name=\"nope\">\n\n</@invoke>\n</@tool_calls>"));
  // days is required.
  EXPECT_FALSE(accepts(g,
                       "<@invoke name=\"get_weather\">\n"
                       "<@parameter name=\"city\" string=\"true\">Paris</@parameter>\n"
                       "</@invoke>\n</@tool_calls>"));
  // Unknown and repeated parameters.
  EXPECT_FALSE(accepts(g,
                       "<@invoke name=\"ping\">\n"
                       "<@parameter name=\"x\" string=\"true\">1</@parameter>\n"
                       "</@invoke>\n</@tool_calls>"));
  EXPECT_FALSE(accepts(g,
                       "<@invoke name=\"get_weather\">\n"
                       "<@parameter name=\"days\" string=\"false\">3</@parameter>\n"
                       "<@parameter name=\"days\" string=\"false\">3</@parameter>\n"
                       "<@parameter name=\"city\" string=\"true\">Paris</@parameter>\n"
                       "</@invoke>\n</@tool_calls>"));
  // No calls at all.
  EXPECT_FALSE(accepts(g, "\n</@tool_calls>"));
}

TEST(DsmlToolGrammar, RejectsInvalidValues) {
  const auto g = grammar("block");
  auto weather = [](const std::string& days, const std::string& unit) {
    return "<@invoke name=\"get_weather\">\n"
           "<@parameter name=\"city\" string=\"true\">Rome</@parameter>\n"
           "<@parameter name=\"days\" string=\"false\">" +
           days + "</@parameter>\n" + unit + "</@invoke>\n</@tool_calls>";
  };
  EXPECT_TRUE(accepts(g, weather("1", "")));
  EXPECT_FALSE(accepts(g, weather("8", "")));      // above maximum
  EXPECT_FALSE(accepts(g, weather("2.5", "")));    // not an integer
  EXPECT_FALSE(accepts(g, weather("\"3\"", "")));  // a string
  EXPECT_FALSE(
      accepts(g, weather("3", "<@parameter name=\"unit\" string=\"false\">\"k\"</@parameter>\n")));
  // A string enum may be raw text: exactly one of its texts.
  auto unit = [&](const std::string& raw) {
    return weather("3", "<@parameter name=\"unit\" string=\"true\">" + raw + "</@parameter>\n");
  };
  EXPECT_TRUE(accepts(g, unit("c")));
  EXPECT_TRUE(accepts(g, unit("f")));
  EXPECT_FALSE(accepts(g, unit("k")));
  EXPECT_FALSE(accepts(g, unit("cc")));
  EXPECT_FALSE(accepts(g, unit("")));
  EXPECT_FALSE(accepts(g, unit("\"c\"")));
  // A string with a length bound is JSON only.
  EXPECT_FALSE(accepts(g,
                       "<@invoke name=\"search\">\n"
                       "<@parameter name=\"q\" string=\"true\">abc</@parameter>\n"
                       "</@invoke>\n</@tool_calls>"));
  EXPECT_TRUE(accepts(g,
                      "<@invoke name=\"search\">\n"
                      "<@parameter name=\"q\" string=\"false\">\"abc\"</@parameter>\n"
                      "</@invoke>\n</@tool_calls>"));
  // A non-string schema may not be raw text either.
  EXPECT_FALSE(accepts(g,
                       "<@invoke name=\"tag\">\n"
                       "<@parameter name=\"labels\" string=\"true\">[]</@parameter>\n"
                       "</@invoke>\n</@tool_calls>"));
}

TEST(DsmlToolGrammar, MarkerIsATokenNotText) {
  const auto g = grammar("block");
  DsmlToolMatcher m(g);
  EXPECT_TRUE(m.advance("<"));
  EXPECT_TRUE(m.marker_allowed());
  EXPECT_FALSE(m.advance(kM));  // the marker's characters as text
  EXPECT_FALSE(m.advance("\xFF"));
  EXPECT_TRUE(m.advance_token(7, "", false));
  EXPECT_FALSE(m.marker_allowed());
  EXPECT_FALSE(m.advance_token(9, "", false));  // other special tokens: not in the block
}

TEST(DsmlToolGrammar, NamedToolStartsInsideTheInvoke) {
  const auto g = grammar("invoke", "ping");
  EXPECT_TRUE(accepts(g, "\n</@invoke>\n</@tool_calls>"));
  EXPECT_TRUE(accepts(g, "\n</@invoke>\n" + std::string(kWeather) + "\n</@tool_calls>"));
  EXPECT_FALSE(accepts(g,
                       "<@parameter name=\"city\" string=\"true\">x</@parameter>\n</@invoke>"
                       "\n</@tool_calls>"));
  const auto one = grammar("invoke", "ping", 1);
  EXPECT_TRUE(accepts(one, "\n</@invoke>\n</@tool_calls>"));
  EXPECT_FALSE(accepts(one, "\n</@invoke>\n" + std::string(kWeather) + "\n</@tool_calls>"));
}

TEST(DsmlToolGrammar, AutoLeavesTextFreeUntilTheBlockOpens) {
  const auto g = grammar("free");
  DsmlToolMatcher m(g);
  EXPECT_TRUE(m.free());
  EXPECT_TRUE(m.accepting());
  EXPECT_TRUE(m.advance("Let me check. A stray "));
  EXPECT_TRUE(m.advance_marker());  // not after "<": prose
  EXPECT_TRUE(m.free());
  EXPECT_TRUE(m.advance("</"));
  EXPECT_TRUE(m.advance_marker());  // after "</": prose
  EXPECT_TRUE(m.free());
  EXPECT_TRUE(m.advance("\n\n<"));
  EXPECT_TRUE(m.advance_marker());
  EXPECT_FALSE(m.free());
  EXPECT_FALSE(m.accepting());
  DsmlToolMatcher copy = m;
  EXPECT_FALSE(copy.advance("tool_call>"));
  EXPECT_TRUE(m.advance("tool_calls>\n"));
  for (const std::string& piece : {std::string("<"), std::string("invoke name=\"ping\">\n\n</"),
                                   std::string("invoke>\n</"), std::string("tool_calls>")}) {
    if (piece != "<") {
      EXPECT_TRUE(m.advance_marker());
    }
    EXPECT_TRUE(m.advance(piece)) << piece;
  }
  EXPECT_TRUE(m.complete());
  EXPECT_FALSE(m.advance("\n"));
}

TEST(DsmlToolGrammar, AutoWithReasoningIgnoresMarkersUntilReasoningEnds) {
  Json doc = {{"marker", 7},
              {"reasoning_end", 9},
              {"reasoning", true},
              {"start", "free"},
              {"tools", Json::array({{{"name", "ping"}}})}};
  Result<DsmlToolGrammar> g = compile_dsml_tool_grammar(doc.dump());
  ASSERT_TRUE(g) << g.message();
  DsmlToolMatcher m(std::make_shared<const DsmlToolGrammar>(*g));
  EXPECT_TRUE(m.advance("think <"));
  EXPECT_TRUE(m.advance_token(7, "", false));
  EXPECT_TRUE(m.free());
  EXPECT_TRUE(m.advance_token(9, "</think>", false));
  EXPECT_TRUE(m.advance_token(100, "\n\n<", true));
  EXPECT_TRUE(m.advance_token(7, "", false));
  EXPECT_FALSE(m.free());
}

TEST(DsmlToolGrammar, RawValuesAreUtf8WithoutControlBytes) {
  const auto g = grammar("invoke", "get_weather");
  auto with_city = [](const std::string& city) {
    return "<@parameter name=\"city\" string=\"true\">" + city +
           "</@parameter>\n<@parameter name=\"days\" string=\"false\">2</@parameter>\n"
           "</@invoke>\n</@tool_calls>";
  };
  EXPECT_TRUE(accepts(g, with_city("São Paulo\n\"quoted\" \\ <b>")));
  EXPECT_TRUE(accepts(g, with_city("")));
  EXPECT_FALSE(accepts(g, with_city("bad\x01")));
  EXPECT_FALSE(accepts(g, with_city("bad\xC3")));
}

TEST(DsmlToolGrammar, CompileRefusesWhatItCannotEnforce) {
  auto refusal = [](const char* parameters) {
    Result<DsmlTool> t = compile_dsml_tool("f", Json::parse(parameters));
    return t ? std::string() : t.message();
  };
  EXPECT_EQ(refusal(R"({"type":"object","properties":{"a":{"type":"string","pattern":"x"}}})"),
            "tool 'f': property 'a': 'pattern' is not supported");
  EXPECT_NE(refusal(R"({"type":"object","patternProperties":{}})").find("patternProperties"),
            std::string::npos);
  EXPECT_NE(refusal(R"({"type":"array"})"), "");
  EXPECT_NE(refusal(R"({"properties":{"a\"b":{}}})"), "");
  EXPECT_NE(refusal(R"({"properties":{"a":{}},"required":["b"]})"), "");
  EXPECT_EQ(refusal(R"({"type":"object","properties":{"r":{"$ref":"#/$defs/d"}},
                        "$defs":{"d":{"type":"integer"}}})"),
            "");
  EXPECT_FALSE(compile_dsml_tool_grammar(R"({"marker":7,"tools":[]})"));
  EXPECT_FALSE(compile_dsml_tool_grammar(R"({"tools":[{"name":"a"}]})"));
  EXPECT_FALSE(compile_dsml_tool_grammar(R"({"marker":7,"tools":[{"name":"a"},{"name":"a"}]})"));
  EXPECT_FALSE(compile_dsml_tool_grammar(
      R"({"marker":7,"start":"invoke","tool":"b","tools":[{"name":"a"}]})"));
  EXPECT_FALSE(compile_dsml_tool_grammar("not json"));
}

}  // namespace
}  // namespace v4
