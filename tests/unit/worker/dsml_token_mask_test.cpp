// The strict-tools token mask (spec §5.8): along random outputs of the DSML tool grammar, the
// mask from the precomputed tables and the trie walk must allow exactly the tokens a one-by-one
// scan of the matcher allows, the marker token by its id only; and the sampler must only ever
// produce calls the grammar admits.
#include "worker/dsml_token_mask.h"

#include <gtest/gtest.h>

#include <random>

#include "worker/request_sampler.h"

namespace v4 {
namespace {

using Json = nlohmann::ordered_json;

constexpr int32_t kMarkerId = 0;
constexpr int32_t kEndId = 1;

std::shared_ptr<const TokenVocabulary> test_vocabulary() {
  std::vector<std::string> tokens = {"｜DSML｜", "<end>"};
  std::vector<bool> text = {false, false};
  for (int b = 1; b < 256; ++b) {
    tokens.emplace_back(1, static_cast<char>(b));
    text.push_back(true);
  }
  for (const char* t :
       {"｜DSML｜",    "invoke", " name=\"", "parameter", "\" string=\"", "true\">",   "false\">",
        "\">\n",       "\n<",    "\n</",     "</",        "tool_calls>",  "invoke>\n", "parameter>",
        "get_weather", "ping",   "city",     "days",      "Paris",        "1</",       "\"}</",
        "]<",          "\"c\"",  "true",     "[\"",       "\",\"",        "ab</cd",    "\xC3\xA9",
        "\xE2\x82",    "\xAC<",  "12",       "\"Oslo\"</"}) {
    tokens.emplace_back(t);
    text.push_back(true);
  }
  return std::make_shared<const TokenVocabulary>(tokens, text);
}

std::shared_ptr<const DsmlToolGrammar> test_grammar(const char* start) {
  Json doc = Json::parse(R"({"marker": 0, "tools": [
      {"name": "get_weather", "parameters": {"type": "object", "properties": {
          "city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 30},
          "unit": {"enum": ["c", "f"]}}, "required": ["city"]}},
      {"name": "ping", "parameters": {"type": "object", "properties": {
          "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}}}}]})");
  doc["start"] = start;
  Result<DsmlToolGrammar> g = compile_dsml_tool_grammar(doc.dump());
  EXPECT_TRUE(g) << g.message();
  return std::make_shared<const DsmlToolGrammar>(g ? *g : DsmlToolGrammar());
}

TEST(DsmlTokenMask, MatchesTheScanAlongRandomOutputs) {
  const auto vocabulary = test_vocabulary();
  for (const char* start : {"block", "free"}) {
    const auto grammar = test_grammar(start);
    for (uint32_t seed = 0; seed < 40; ++seed) {
      std::mt19937 rng(seed);
      DsmlToolMatcher m(grammar);
      if (m.free()) {
        ASSERT_TRUE(m.advance("Sure.\n\n<"));
        ASSERT_TRUE(m.advance_marker());
      }
      std::vector<uint64_t> fast, scan;
      for (int step = 0; step < 200 && !m.complete(); ++step) {
        ASSERT_TRUE(dsml_allowed_token_bits(m, *vocabulary, fast));
        dsml_allowed_token_bits_by_scan(m, *vocabulary, scan);
        ASSERT_EQ(fast, scan) << "seed " << seed << " step " << step;
        std::vector<int32_t> ids;
        for (size_t i = 0; i < vocabulary->size(); ++i) {
          if (fast[i / 64] >> (i % 64) & 1) ids.push_back(static_cast<int32_t>(i));
        }
        ASSERT_FALSE(ids.empty()) << "dead end at step " << step;
        // Prefer structure over long values so walks finish.
        const int32_t id = ids[std::uniform_int_distribution<size_t>(0, ids.size() - 1)(rng)];
        ASSERT_TRUE(m.advance_token(id, vocabulary->bytes(id), vocabulary->is_text(id)));
      }
    }
  }
}

TEST(DsmlTokenMask, MarkerOnlyByIdAndFreeTextUnmasked) {
  const auto vocabulary = test_vocabulary();
  DsmlToolMatcher m(test_grammar("block"));
  std::vector<uint64_t> bits;
  ASSERT_TRUE(m.advance("<"));
  ASSERT_TRUE(dsml_allowed_token_bits(m, *vocabulary, bits));
  std::vector<int32_t> ids;
  for (size_t i = 0; i < vocabulary->size(); ++i) {
    if (bits[i / 64] >> (i % 64) & 1) ids.push_back(static_cast<int32_t>(i));
  }
  EXPECT_EQ(ids, std::vector<int32_t>{kMarkerId});
  DsmlToolMatcher free(test_grammar("free"));
  EXPECT_FALSE(dsml_allowed_token_bits(free, *vocabulary, bits));
}

// Sampling over random logits: every output is a block the grammar admits, then the end token.
TEST(DsmlTokenMask, SamplerOutputsAreAdmittedCalls) {
  const auto vocabulary = test_vocabulary();
  Json doc = Json::parse(R"({"marker": 0, "start": "block", "tools": [
      {"name": "get_weather", "parameters": {"type": "object", "properties": {
          "city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 30}},
          "required": ["city", "days"]}}]})");
  for (uint64_t seed = 0; seed < 20; ++seed) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = seed;
    p.stop_token_ids = {kEndId};
    p.constraint = OutputConstraintKind::kDsmlTools;
    p.constraint_source = doc.dump();
    ASSERT_TRUE(validate_output_constraint(p, vocabulary.get()));
    RequestSampler sampler(p, vocabulary);
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const auto grammar =
        std::make_shared<const DsmlToolGrammar>(*compile_dsml_tool_grammar(doc.dump()));
    DsmlToolMatcher replay(grammar);  // an independent matcher fed the sampled tokens
    bool ended = false;
    for (int step = 0; step < 400 && !ended; ++step) {
      std::vector<float> logits(vocabulary->size());
      for (float& l : logits) l = normal(rng);
      // Favour the closing tags so that raw values end.
      logits[kMarkerId] += 4.0f;
      const int32_t t = sampler.sample(logits).token;
      if (t == kEndId) {
        ended = true;
      } else {
        ASSERT_TRUE(replay.advance_token(t, vocabulary->bytes(t), vocabulary->is_text(t)))
            << "seed " << seed << " step " << step;
      }
    }
    if (ended) {
      EXPECT_TRUE(replay.complete()) << "seed " << seed;
    }
  }
}

}  // namespace
}  // namespace v4
