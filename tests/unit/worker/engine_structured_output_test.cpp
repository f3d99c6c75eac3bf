// Structured outputs end to end on the tiny model (4096-token vocabulary): every output is JSON
// the schema's grammar admits, ended by the stop token; and a request's tokens do not depend on
// batching or on preemption by recompute (the matcher advances on sampled tokens only).
#include "model/text/tokenizer.h"
#include "tests/unit/worker/tiny_engine_fixture.h"

namespace v4 {
namespace {

using Ids = std::vector<int32_t>;
constexpr int32_t kStop = 1;  // the synthetic vocabulary's EOS

constexpr const char* kSchema = R"({"type":"object","additionalProperties":false,
  "required":["id","name","tags"],"properties":{
  "id":{"type":"integer","minimum":0,"maximum":999},
  "name":{"type":"string","maxLength":12},
  "tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":3},
  "ok":{"type":"boolean"}}})";

class StructuredEngineTest : public EngineTest {
 protected:
  static void SetUpTestSuite() {
    EngineTest::SetUpTestSuite();
    if (!model_) return;
    Result<Tokenizer> tokenizer = Tokenizer::from_gguf(model_->file);
    if (!tokenizer) return;
    std::vector<std::string> bytes;
    std::vector<bool> text;
    for (size_t id = 0; id < kTestVocab; ++id) {
      bytes.emplace_back(tokenizer->token_bytes(static_cast<TokenId>(id)));
      text.push_back(tokenizer->token_type(static_cast<TokenId>(id)) == TokenType::kNormal);
    }
    vocabulary_ = std::make_shared<const TokenVocabulary>(bytes, text);
  }
  static EngineOptions structured_options() {
    EngineOptions o = options();
    o.vocabulary = vocabulary_;
    return o;
  }
  static GenerationRequest structured(size_t prompt_len, uint32_t seed) {
    GenerationRequest r;
    r.prompt = prompt(prompt_len, seed);
    r.sampling.constraint = OutputConstraintKind::kJsonSchema;
    r.sampling.constraint_source = kSchema;
    r.sampling.stop_token_ids = {kStop};
    r.sampling.max_tokens = 200;
    r.sampling.temperature = 1.0f;
    r.sampling.seed = seed;
    r.sampling.logprobs = true;
    return r;
  }
  static std::string text_of(const Ids& ids) {
    std::string text;
    for (int32_t id : ids)
      if (id != kStop) text += vocabulary_->bytes(id);
    return text;
  }
  static void expect_valid(const std::vector<GenerationEvent>& events) {
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().finish, FinishReason::kStop);
    EXPECT_EQ(events.back().token, kStop);
    const std::string text = text_of(tokens_of(events));
    Result<JsonGrammar> g = compile_json_schema(nlohmann::ordered_json::parse(kSchema));
    EXPECT_TRUE(grammar_accepts(*g, text)) << text;
    const nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    ASSERT_FALSE(value.is_discarded()) << text;
    EXPECT_LE(value["id"].get<int>(), 999) << text;
    EXPECT_LE(value["name"].get<std::string>().size(), 12u * 4) << text;
  }
  static std::shared_ptr<const TokenVocabulary> vocabulary_;
};

std::shared_ptr<const TokenVocabulary> StructuredEngineTest::vocabulary_;

TEST_F(StructuredEngineTest, OutputsAreAdmittedJson) {
  for (uint32_t seed = 0; seed < 8; ++seed)
    expect_valid(run(structured_options(), {structured(20 + seed, seed)}).at(1));
}

TEST_F(StructuredEngineTest, IsBatchInvariant) {
  std::vector<GenerationRequest> rs = mixed_requests(12, true);
  for (size_t i = 0; i < rs.size(); i += 3)
    rs[i] = structured(10 + i * 5, static_cast<uint32_t>(i));
  const Streams together = run(structured_options(), rs);
  for (size_t i = 0; i < rs.size(); i += 3) {
    const std::vector<GenerationEvent> alone = run(structured_options(), {rs[i]}).at(1);
    expect_valid(together.at(i + 1));
    EXPECT_EQ(tokens_of(alone), tokens_of(together.at(i + 1))) << "request " << i;
  }
}

TEST_F(StructuredEngineTest, SurvivesPreemption) {
  std::vector<GenerationRequest> rs;
  for (uint32_t i = 0; i < 6; ++i) rs.push_back(structured(100 + i * 5, i));
  const Streams free_run = run(structured_options(), rs);
  EngineOptions tight = structured_options();
  tight.total_pages = 4;
  EngineStats stats;
  const Streams preempted = run(tight, rs, &stats);
  EXPECT_GT(stats.preemptions, 0u);
  for (size_t i = 1; i <= rs.size(); ++i) {
    EXPECT_EQ(tokens_of(free_run.at(i)), tokens_of(preempted.at(i))) << "request " << i;
    expect_valid(preempted.at(i));
  }
}

TEST_F(StructuredEngineTest, RefusedWithoutVocabularyOrWithABadSchema) {
  CpuBackend backend(1);
  EngineCore plain(weights(), backend, options());
  EXPECT_FALSE(plain.validate(structured(10, 1)));
  EngineCore core(weights(), backend, structured_options());
  EXPECT_TRUE(core.validate(structured(10, 1)));
  GenerationRequest bad = structured(10, 1);
  bad.sampling.constraint_source = R"({"type":"string","pattern":"x"})";
  EXPECT_FALSE(core.validate(bad));
}

}  // namespace
}  // namespace v4
