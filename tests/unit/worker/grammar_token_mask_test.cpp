// The structured-output token mask: on a vocabulary of single bytes and multi-byte tokens
// (structure, string pieces, escapes, partial UTF-8), the trie walk with its string-body tables
// must allow exactly the tokens that a one-by-one scan of the matcher allows, along random
// outputs; and the sampler must only ever produce text the grammar admits.
#include "worker/grammar_token_mask.h"

#include <gtest/gtest.h>

#include <random>

#include "model/grammar/regex_grammar.h"
#include "worker/request_sampler.h"

namespace v4 {
namespace {

using Json = nlohmann::ordered_json;

std::shared_ptr<const TokenVocabulary> test_vocabulary() {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
  for (const char* t : {"{\"",      "\":",      "\",\"",   "\"}",
                        "\"]",      "},{",      "[{\"",    "\":\"",
                        "\":[",     "abc",      "name",    "\"name\":\"",
                        "\"age\":", "true",     "false",   "null",
                        "12",       "345",      "-1",      ".5",
                        "e+",       "\\n",      "\\u00",   "\\ud8",
                        "\\\"",     "a\"",      "a\"}",    "x\"},{\"",
                        "\xC3\xA9", "\xE2\x82", "\xAC\"",  "\"\xF0\x9F\x98\x80",
                        "ab\"c",    "\"\"",     "  ",      "\":1",
                        ",\"",      "1,2",      "]}",      "\"tags\":[\"",
                        "red",      "green",    "\"red\"", "\"gr"}) {
    tokens.emplace_back(t);
  }
  // Longer than StringBodyTable::kShortTokenChars: the string tables list these apart.
  tokens.push_back(std::string(30, 'x'));
  tokens.push_back(std::string(26, 'y') + "\"}");
  std::vector<bool> text(tokens.size(), true);
  tokens.emplace_back("<end>");  // a special token: never part of constrained text
  text.push_back(false);
  return std::make_shared<const TokenVocabulary>(tokens, text);
}

const char* kSchemas[] = {
    R"({"type":"object","properties":{"name":{"type":"string","maxLength":5},
        "age":{"type":"integer","minimum":-3,"maximum":400},
        "tags":{"type":"array","items":{"enum":["red","green"]},"maxItems":3}},
        "required":["name","age"]})",
    R"({"type":"array","items":{"anyOf":[{"type":"string","minLength":2},{"type":"number"}]},
        "maxItems":4})",
    R"({"type":"object","properties":{"v":{}},"required":["v"]})",
    R"({"type":"array","items":{"type":"string","maxLength":40},"maxItems":5})",
};

std::vector<int32_t> ids_of(const std::vector<uint64_t>& bits) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < bits.size() * 64; ++i)
    if (bits[i / 64] >> (i % 64) & 1) ids.push_back(static_cast<int32_t>(i));
  return ids;
}

TEST(GrammarTokenMask, TrieWalkAgreesWithTokenByTokenScan) {
  const auto vocabulary = test_vocabulary();
  std::mt19937 rng(11);
  int states = 0;
  for (const char* schema : kSchemas) {
    Result<JsonGrammar> g = compile_json_schema(Json::parse(schema));
    ASSERT_TRUE(g) << g.message();
    const auto grammar = std::make_shared<const JsonGrammar>(*g);
    for (int walk = 0; walk < 40; ++walk) {
      GrammarMatcher m(grammar);
      for (int step = 0; step < 60 && !m.complete(); ++step) {
        std::vector<uint64_t> fast, scan;
        allowed_token_bits(m, *vocabulary, fast);
        allowed_token_bits_by_scan(m, *vocabulary, scan);
        ASSERT_EQ(ids_of(fast), ids_of(scan)) << "schema " << schema << " step " << step;
        ++states;
        const std::vector<int32_t> ids = ids_of(fast);
        ASSERT_FALSE(ids.empty());
        ASSERT_TRUE(m.advance(vocabulary->bytes(ids[rng() % ids.size()])));
      }
    }
  }
  EXPECT_GT(states, 1000);
}

TEST(GrammarTokenMask, RegexMaskAgreesWithTokenByTokenScan) {
  const auto vocabulary = test_vocabulary();
  std::mt19937 rng(3);
  for (const char* pattern : {R"(\d{1,4}(,\d{1,4}){0,3})", "(red|green|abc)+", R"([a-z"]{0,12}\})",
                              "(true|false|null|name)"}) {
    Result<JsonGrammar> g = compile_regex(pattern);
    ASSERT_TRUE(g) << g.message();
    const auto grammar = std::make_shared<const JsonGrammar>(*g);
    for (int walk = 0; walk < 20; ++walk) {
      GrammarMatcher m(grammar);
      for (int step = 0; step < 30 && !m.complete(); ++step) {
        std::vector<uint64_t> fast, scan;
        allowed_token_bits(m, *vocabulary, fast);
        allowed_token_bits_by_scan(m, *vocabulary, scan);
        ASSERT_EQ(ids_of(fast), ids_of(scan)) << pattern << " step " << step;
        const std::vector<int32_t> ids = ids_of(fast);
        if (ids.empty()) break;
        ASSERT_TRUE(m.advance(vocabulary->bytes(ids[rng() % ids.size()])));
      }
    }
  }
}

TEST(GrammarTokenMask, SpecialTokensAreNeverAllowed) {
  const auto vocabulary = test_vocabulary();
  GrammarMatcher m(std::make_shared<const JsonGrammar>(json_object_grammar()));
  ASSERT_TRUE(m.advance("{\"k\":\"abc"));
  std::vector<uint64_t> bits;
  allowed_token_bits(m, *vocabulary, bits);
  const auto end = static_cast<int32_t>(vocabulary->size() - 1);
  EXPECT_FALSE(bits[static_cast<size_t>(end) / 64] >> (end % 64) & 1);
}

// The sampler on random logits: the text it produces is admitted whole, and the end token comes
// exactly when the value is complete.
TEST(GrammarTokenMask, SamplerOutputsAreAdmittedAndEndWithTheEndToken) {
  const auto vocabulary = test_vocabulary();
  const auto end = static_cast<int32_t>(vocabulary->size() - 1);
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(0.0f, 3.0f);
  int ended_outputs = 0;
  for (const char* schema : kSchemas) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      SamplingParams p;
      p.temperature = 1.0f;
      p.seed = seed;
      p.stop_token_ids = {end};
      p.constraint = OutputConstraintKind::kJsonSchema;
      p.constraint_source = schema;
      ASSERT_TRUE(validate_output_constraint(p, vocabulary.get()));
      RequestSampler sampler(p, vocabulary);
      std::string text;
      bool ended = false;
      for (int step = 0; step < 300 && !ended; ++step) {
        std::vector<float> logits(vocabulary->size());
        for (float& l : logits) l = noise(rng);
        const int32_t token = sampler.sample(logits).token;
        if (token == end)
          ended = true;
        else
          text += vocabulary->bytes(token);
      }
      if (!ended) continue;  // a long free value; the length limit is the caller's
      ++ended_outputs;
      Result<JsonGrammar> g = compile_json_schema(Json::parse(schema));
      EXPECT_TRUE(grammar_accepts(*g, text)) << text;
      EXPECT_FALSE(Json::parse(text, nullptr, false).is_discarded()) << text;
    }
  }
  EXPECT_GT(ended_outputs, 30);
}

TEST(GrammarTokenMask, ConstraintWithoutVocabularyIsRefused) {
  SamplingParams p;
  p.constraint = OutputConstraintKind::kJsonObject;
  EXPECT_FALSE(validate_output_constraint(p, nullptr));
  p.constraint = OutputConstraintKind::kJsonSchema;
  p.constraint_source = R"({"type":"string","format":"email"})";
  const auto vocabulary = test_vocabulary();
  const Status s = validate_output_constraint(p, vocabulary.get());
  EXPECT_NE(s.message().find("'format'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace v4
