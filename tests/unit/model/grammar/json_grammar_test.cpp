// The JSON-schema compiler and the byte-level matcher: which texts a schema's grammar admits
// (hand-checked against the schema's meaning), which keywords are refused, and random walks of
// the matcher whose every complete output nlohmann::json (an independent parser) must accept.
#include "model/grammar/json_grammar.h"

#include <gtest/gtest.h>

#include <random>

#include "model/grammar/grammar_matcher.h"

namespace v4 {
namespace {

using Json = nlohmann::ordered_json;

JsonGrammar compile(const char* schema) {
  Result<JsonGrammar> g = compile_json_schema(Json::parse(schema));
  EXPECT_TRUE(g) << g.message();
  return g ? *g : json_object_grammar();
}

std::string refusal(const char* schema) {
  Result<JsonGrammar> g = compile_json_schema(Json::parse(schema));
  return g ? "" : g.message();
}

TEST(JsonGrammar, ObjectPropertiesInSchemaOrderWithOptionalOnesLeftOut) {
  const JsonGrammar g = compile(R"({"type":"object","properties":{"a":{"type":"integer"},
      "b":{"type":"string"},"c":{"type":"boolean"}},"required":["a","c"],
      "additionalProperties":false})");
  EXPECT_TRUE(grammar_accepts(g, R"({"a":1,"b":"x","c":true})"));
  EXPECT_TRUE(grammar_accepts(g, R"({"a":-12,"c":false})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"a":1})"));  // c is required
  EXPECT_FALSE(grammar_accepts(g, "{}"));
  EXPECT_FALSE(grammar_accepts(g, R"({"c":true,"a":1})"));        // schema order
  EXPECT_FALSE(grammar_accepts(g, R"({"a":1,"d":2,"c":true})"));  // not listed
  EXPECT_FALSE(grammar_accepts(g, R"({"a":1, "c":true})"));       // no whitespace
  EXPECT_FALSE(grammar_accepts(g, R"({"a":1.5,"c":true})"));      // integer
  EXPECT_FALSE(grammar_accepts(g, R"({"a":1,"c":true})"
                                  "x"));
}

TEST(JsonGrammar, IntegerBoundsAreExact) {
  const JsonGrammar g = compile(R"({"type":"integer","minimum":-5,"maximum":120})");
  for (const char* ok : {"-5", "-1", "0", "7", "99", "120"})
    EXPECT_TRUE(grammar_accepts(g, ok)) << ok;
  for (const char* bad : {"-6", "-0", "121", "1000", "01", "-", "", "1.0", "1e2"})
    EXPECT_FALSE(grammar_accepts(g, bad)) << bad;
  const JsonGrammar exclusive =
      compile(R"({"type":"integer","exclusiveMinimum":10,"exclusiveMaximum":12})");
  EXPECT_TRUE(grammar_accepts(exclusive, "11"));
  EXPECT_FALSE(grammar_accepts(exclusive, "10"));
  EXPECT_FALSE(grammar_accepts(exclusive, "12"));
  // A prefix that cannot grow into the range is refused at once, not at the end.
  GrammarMatcher m(std::make_shared<const JsonGrammar>(
      compile(R"({"type":"integer","minimum":300,"maximum":350})")));
  EXPECT_FALSE(m.advance("4"));
  EXPECT_TRUE(m.advance("3"));
  EXPECT_FALSE(m.advance("6"));
  EXPECT_TRUE(m.advance("4"));
  EXPECT_FALSE(m.accepting());  // 34 is below the minimum
  EXPECT_TRUE(m.advance("9"));
  EXPECT_TRUE(m.accepting());
  EXPECT_FALSE(m.advance("0"));  // 3490 is above the maximum
}

TEST(JsonGrammar, NumbersFollowJsonSyntax) {
  const JsonGrammar g = compile(R"({"type":"number"})");
  for (const char* ok : {"0", "-0", "3.25", "-1e5", "2E-3", "10.5e+12"})
    EXPECT_TRUE(grammar_accepts(g, ok)) << ok;
  for (const char* bad : {"01", ".5", "1.", "1e", "+1", "--1", "1.2.3", "NaN"})
    EXPECT_FALSE(grammar_accepts(g, bad)) << bad;
}

TEST(JsonGrammar, StringLengthsCountCharactersNotBytes) {
  const JsonGrammar g = compile(R"({"type":"string","minLength":2,"maxLength":3})");
  EXPECT_TRUE(grammar_accepts(g, R"("ab")"));
  EXPECT_TRUE(grammar_accepts(g, "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\""));  // é € 😀
  EXPECT_TRUE(grammar_accepts(g, R"("a\n\u00e9")"));
  EXPECT_FALSE(grammar_accepts(g, R"("a")"));
  EXPECT_FALSE(grammar_accepts(g, R"("abcd")"));
  EXPECT_FALSE(grammar_accepts(g, "\"a\xC3\""));          // cut UTF-8 sequence
  EXPECT_FALSE(grammar_accepts(g, "\"a\xC0\x80\""));      // overlong encoding
  EXPECT_FALSE(grammar_accepts(g, "\"a\xED\xA0\x80\""));  // UTF-16 surrogate
  EXPECT_FALSE(grammar_accepts(g, R"("a\ud800")"));       // lone surrogate escape
  EXPECT_FALSE(grammar_accepts(g, "\"a\nb\""));           // raw control character
  EXPECT_FALSE(grammar_accepts(g, R"("a\x")"));           // unknown escape
}

TEST(JsonGrammar, ArraysHonourItemBounds) {
  const JsonGrammar g =
      compile(R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3})");
  EXPECT_TRUE(grammar_accepts(g, "[1]"));
  EXPECT_TRUE(grammar_accepts(g, "[1,2,3]"));
  EXPECT_FALSE(grammar_accepts(g, "[]"));
  EXPECT_FALSE(grammar_accepts(g, "[1,2,3,4]"));
  EXPECT_FALSE(grammar_accepts(g, "[1,]"));
  EXPECT_TRUE(grammar_accepts(compile(R"({"type":"array","maxItems":0})"), "[]"));
}

TEST(JsonGrammar, EnumConstAndLiterals) {
  const JsonGrammar g = compile(R"({"enum":["red","green",1,12,null,{"a":[true]}]})");
  for (const char* ok : {R"("red")", R"("green")", "1", "12", "null", R"({"a":[true]})"})
    EXPECT_TRUE(grammar_accepts(g, ok)) << ok;
  for (const char* bad : {R"("blue")", "2", "123", R"("re")", "true"})
    EXPECT_FALSE(grammar_accepts(g, bad)) << bad;
  EXPECT_TRUE(grammar_accepts(compile(R"({"const":"x"})"), R"("x")"));
  EXPECT_TRUE(grammar_accepts(compile(R"({"type":"boolean"})"), "false"));
  // Each listed type takes the keywords meant for it: the bounds bind the integer only.
  const JsonGrammar nullable = compile(R"({"type":["integer","null"],"minimum":0,"maximum":9})");
  EXPECT_TRUE(grammar_accepts(nullable, "null"));
  EXPECT_TRUE(grammar_accepts(nullable, "9"));
  EXPECT_FALSE(grammar_accepts(nullable, "10"));
}

TEST(JsonGrammar, AnyOfKeepsEveryAlternativeAlive) {
  // Both alternatives start with {"k": — the matcher decides only at the value.
  const JsonGrammar g = compile(R"({"anyOf":[
      {"type":"object","properties":{"k":{"type":"integer"}},"required":["k"]},
      {"type":"object","properties":{"k":{"type":"string"}},"required":["k"]}]})");
  EXPECT_TRUE(grammar_accepts(g, R"({"k":5})"));
  EXPECT_TRUE(grammar_accepts(g, R"({"k":"five"})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"k":true})"));
}

TEST(JsonGrammar, RefsToDefinitions) {
  const JsonGrammar g = compile(R"({"$defs":{"point":{"type":"object","properties":{
      "x":{"type":"integer"},"y":{"type":"integer"}},"required":["x","y"]}},
      "type":"array","items":{"$ref":"#/$defs/point"},"maxItems":2})");
  EXPECT_TRUE(grammar_accepts(g, R"([{"x":1,"y":2},{"x":3,"y":4}])"));
  EXPECT_FALSE(grammar_accepts(g, R"([{"x":1}])"));
}

TEST(JsonGrammar, FreeJsonObject) {
  const JsonGrammar g = json_object_grammar();
  EXPECT_TRUE(grammar_accepts(g, R"({})"));
  EXPECT_TRUE(grammar_accepts(g, R"({"a":[1,"x",{"b":null}],"c":-2.5e3,"d":true})"));
  EXPECT_FALSE(grammar_accepts(g, R"([1])"));
  EXPECT_FALSE(grammar_accepts(g, R"({"a":})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"a":tru})"));
}

// Python's json.dumps separators, exactly: ", " and ": ", nothing else.
TEST(JsonGrammar, SpacedGrammarTakesPythonSeparators) {
  JsonGrammar g = compile(R"({"type":"object","properties":{"a":{"type":"array",
      "items":{"type":"integer"}},"b":{}},"required":["a"]})");
  g.spaced = true;
  EXPECT_TRUE(grammar_accepts(g, R"({"a": [1, 2], "b": {"x": [true, null]}})"));
  EXPECT_TRUE(grammar_accepts(g, R"({"a": []})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"a":[1, 2]})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"a": [1,2]})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"a": [1,  2]})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"a": [1, 2], "b": {"x":1}})"));
  g.spaced = false;
  EXPECT_TRUE(grammar_accepts(g, R"({"a":[1,2],"b":{"x":[true,null]}})"));
  EXPECT_FALSE(grammar_accepts(g, R"({"a": [1, 2]})"));
}

TEST(JsonGrammar, UnsupportedKeywordsAreNamed) {
  EXPECT_NE(refusal(R"({"type":"string","pattern":"a+"})").find("'pattern'"), std::string::npos);
  EXPECT_NE(refusal(R"({"type":"string","format":"date"})").find("'format'"), std::string::npos);
  EXPECT_NE(refusal(R"({"type":"object","properties":{"n":{"type":"number","minimum":0}}})")
                .find("'minimum'"),
            std::string::npos);
  EXPECT_NE(refusal(R"({"$defs":{"n":{"type":"array","items":{"$ref":"#/$defs/n"}}},
      "$ref":"#/$defs/n"})")
                .find("recursive"),
            std::string::npos);
  EXPECT_NE(refusal(R"({"type":"object","patternProperties":{}})").find("'patternProperties'"),
            std::string::npos);
  EXPECT_NE(refusal(R"({"$ref":"#/$defs/missing"})").find("not defined"), std::string::npos);
  EXPECT_NE(refusal(R"({"type":"integer","minimum":5,"maximum":4})").find("minimum"),
            std::string::npos);
  EXPECT_NE(refusal(R"({"type":"date"})").find("'type'"), std::string::npos);
}

// Random walks: at each step pick a random byte the matcher takes; stop when it may end (with
// some probability) or must. Every output must parse as JSON.
TEST(JsonGrammar, RandomWalksProduceValidJson) {
  const JsonGrammar g = compile(R"({"type":"object","properties":{
      "name":{"type":"string","maxLength":6},"age":{"type":"integer","minimum":0,"maximum":150},
      "tags":{"type":"array","items":{"enum":["a","bc"]},"maxItems":3},
      "score":{"type":"number"},"extra":{},
      "kind":{"anyOf":[{"type":"null"},{"type":"object","properties":{"z":{"type":"boolean"}}}]}},
      "required":["name","age","kind"]})");
  std::mt19937 rng(7);
  const auto shared = std::make_shared<const JsonGrammar>(g);
  int finished = 0;
  for (int walk = 0; walk < 200; ++walk) {
    GrammarMatcher m(shared);
    std::string text;
    while (!m.complete() && text.size() < 400) {
      if (m.accepting() && rng() % 4 == 0) break;
      std::vector<uint8_t> options;
      for (int b = 0; b < 256; ++b) {
        GrammarMatcher copy = m;
        if (copy.advance(std::string(1, static_cast<char>(b))))
          options.push_back(static_cast<uint8_t>(b));
      }
      ASSERT_FALSE(options.empty()) << text;
      const uint8_t b = options[rng() % options.size()];
      ASSERT_TRUE(m.advance(std::string(1, static_cast<char>(b))));
      text.push_back(static_cast<char>(b));
    }
    if (!m.accepting()) continue;  // ran out of room inside a free value
    ++finished;
    const Json parsed = Json::parse(text, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << text;
    ASSERT_TRUE(parsed.contains("name") && parsed.contains("age") && parsed.contains("kind"))
        << text;
    EXPECT_LE(parsed["age"].get<int64_t>(), 150) << text;
    EXPECT_GE(parsed["age"].get<int64_t>(), 0) << text;
  }
  EXPECT_GT(finished, 50);
}

}  // namespace
}  // namespace v4
