// guided_regex patterns compiled to byte NFAs: which texts match whole (checked by hand against
// the patterns' meaning), and which constructs are refused.
#include "model/grammar/regex_grammar.h"

#include <gtest/gtest.h>

#include "model/grammar/grammar_matcher.h"

namespace v4 {
namespace {

bool matches(const char* pattern, const std::string& text) {
  Result<JsonGrammar> g = compile_regex(pattern);
  EXPECT_TRUE(g) << pattern << ": " << g.message();
  return g && grammar_accepts(*g, text);
}

TEST(RegexGrammar, MatchesWholeTexts) {
  EXPECT_TRUE(matches(R"(\d{3}-\d{4})", "555-1234"));
  EXPECT_FALSE(matches(R"(\d{3}-\d{4})", "555-123"));
  EXPECT_FALSE(matches(R"(\d{3}-\d{4})", "555-12345"));
  EXPECT_TRUE(matches("(yes|no|maybe)", "maybe"));
  EXPECT_FALSE(matches("(yes|no|maybe)", "ye"));
  EXPECT_TRUE(matches("^[A-Z][a-z]{2,4}( [A-Z][a-z]{2,4})?$", "Ada Lovel"));
  EXPECT_FALSE(matches("[A-Z][a-z]{2,4}", "Adalovel"));
  EXPECT_TRUE(matches(R"(-?\d+(\.\d{1,2})?)", "-12.5"));
  EXPECT_FALSE(matches(R"(-?\d+(\.\d{1,2})?)", "12."));
  EXPECT_TRUE(matches("a*b+", "b"));
  EXPECT_TRUE(matches("a*b+", "aaabbb"));
  EXPECT_FALSE(matches("a*b+", "aaa"));
  EXPECT_TRUE(matches("[^0-9]{2}", "x!"));
  EXPECT_FALSE(matches("[^0-9]{2}", "x1"));
  EXPECT_TRUE(matches("caf\xC3\xA9|tea", "caf\xC3\xA9"));
  EXPECT_TRUE(matches(R"(\w+@\w+\.(com|org))", "ada@math.org"));
  EXPECT_TRUE(matches(R"(#[0-9a-fA-F]{6})", "#00ffAA"));
  EXPECT_TRUE(matches("", ""));
}

TEST(RegexGrammar, AMatchThatCannotGrowIsComplete) {
  Result<JsonGrammar> g = compile_regex("(yes|no)");
  GrammarMatcher m(std::make_shared<const JsonGrammar>(*g));
  ASSERT_TRUE(m.advance("ye"));
  EXPECT_FALSE(m.accepting());
  ASSERT_TRUE(m.advance("s"));
  EXPECT_TRUE(m.complete());
  Result<JsonGrammar> open = compile_regex("a+");
  GrammarMatcher more(std::make_shared<const JsonGrammar>(*open));
  ASSERT_TRUE(more.advance("aa"));
  EXPECT_TRUE(more.accepting());
  EXPECT_FALSE(more.complete());
}

TEST(RegexGrammar, RefusesWhatItCannotEnforce) {
  for (const char* bad : {"(?=a)b", "a*?", R"((a)\1)", "[é]", "a{3,2}", "(ab", "[ab", "*a",
                          "a{99}b{99}", R"(\p{L})"}) {
    Result<JsonGrammar> g = compile_regex(bad);
    EXPECT_FALSE(g) << bad;
    if (!g) {
      EXPECT_NE(g.message().find("regex"), std::string::npos) << g.message();
    }
  }
}

}  // namespace
}  // namespace v4
