// Tokenizer assembly (spec §5.3): added-token cutting, decode, invalid UTF-8, and ids of the real
// DeepSeek-V4 vocabulary checked against HF tokenizers' output.
#include "model/text/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/text/byte_level.h"
#include "tests/unit/common/deepseek_tokenizer.h"

namespace v4 {
namespace {

// Byte symbols (ids 0..255), "ab" (256), control "<|c|>" (257), user-defined "<u>" (258),
// an unused filler (259).
TokenizerVocab tiny_vocab() {
  TokenizerVocab vocab;
  for (int b = 0; b < 256; ++b) vocab.tokens.push_back(byte_level_symbols()[b]);
  vocab.tokens.insert(vocab.tokens.end(), {"ab", "<|c|>", "<u>", "[PAD259]"});
  vocab.token_types.assign(256, 1);
  vocab.token_types.insert(vocab.token_types.end(), {1, 3, 4, 5});
  vocab.merges = {"a b"};
  vocab.bos_id = 257;
  vocab.eos_id = 257;
  return vocab;
}

TEST(Tokenizer, ControlTokensNeedPermissionUserDefinedDoNot) {
  Tokenizer tok = Tokenizer::from_vocab(tiny_vocab()).value();
  EXPECT_EQ(tok.encode("ab<|c|>", true), (std::vector<TokenId>{256, 257}));
  const std::vector<TokenId> plain = tok.encode("ab<|c|>", false);
  EXPECT_EQ(plain.size(), 6u);  // "ab" then "<|", "c", "|>" pieces as bytes
  EXPECT_EQ(tok.decode(plain), "ab<|c|>");
  EXPECT_EQ(tok.encode("x<u>y", false), (std::vector<TokenId>{'x', 258, 'y'}));
}

TEST(Tokenizer, SpecialTokenLookupIsByString) {
  Tokenizer tok = Tokenizer::from_vocab(tiny_vocab()).value();
  EXPECT_EQ(tok.special_token_id("<|c|>"), std::optional<TokenId>(257));
  EXPECT_EQ(tok.special_token_id("<u>"), std::optional<TokenId>(258));
  EXPECT_FALSE(tok.special_token_id("ab").has_value());
  EXPECT_EQ(tok.token_id("ab"), std::optional<TokenId>(256));
}

TEST(Tokenizer, DecodeMapsByteLevelBackAndSkipsUnusedAndOutOfRange) {
  Tokenizer tok = Tokenizer::from_vocab(tiny_vocab()).value();
  const std::vector<TokenId> ids = {256, 259, 258, 9999, -1, ' '};
  EXPECT_EQ(tok.decode(ids), "ab<u> ");
}

TEST(Tokenizer, InvalidUtf8RoundTripsThroughByteTokens) {
  Tokenizer tok = Tokenizer::from_vocab(tiny_vocab()).value();
  const std::string text =
      "a\xff\xfe"
      "b\xc3(\xe6\x97\xed\xa0\x80"
      "ab\x80";
  const std::vector<TokenId> ids = tok.encode(text);
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(ids[1], 0xff);  // one piece per invalid byte
}

TEST(Tokenizer, RejectsInconsistentVocabularies) {
  TokenizerVocab vocab = tiny_vocab();
  vocab.token_types.pop_back();
  EXPECT_FALSE(Tokenizer::from_vocab(vocab).is_ok());
  vocab = tiny_vocab();
  vocab.eos_id = 100000;
  EXPECT_FALSE(Tokenizer::from_vocab(vocab).is_ok());
  EXPECT_FALSE(Tokenizer::from_vocab(TokenizerVocab{}).is_ok());
}

using test_support::deepseek_vocab;

class DeepSeekTokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::optional<TokenizerVocab> vocab = deepseek_vocab();
    if (vocab) tokenizer_ = new Tokenizer(Tokenizer::from_vocab(*vocab).value());
  }
  static void TearDownTestSuite() { delete tokenizer_; }
  void SetUp() override {
    if (tokenizer_ == nullptr) {
      GTEST_SKIP() << "skipped: .venv/lib/*/site-packages/deepseek_tokenizer/tokenizer.json "
                      "not found (scripts/setup installs it)";
    }
  }
  static Tokenizer* tokenizer_;
};
Tokenizer* DeepSeekTokenizer::tokenizer_ = nullptr;

// Expected ids: HF tokenizers 0.23.3, `Tokenizer.encode(text, add_special_tokens=False).ids`.
TEST_F(DeepSeekTokenizer, IdsMatchHfTokenizers) {
  EXPECT_EQ(tokenizer_->encode("Hello 世界"), (std::vector<TokenId>{19923, 223, 3427}));
  EXPECT_EQ(tokenizer_->encode("def f(x):\n    return x  # ok"),
            (std::vector<TokenId>{3465, 285, 4042, 3395, 361, 1354, 1527, 223, 1823, 9109}));
  EXPECT_EQ(tokenizer_->encode("मौसम 🌧️ 2026-01-01"),
            (std::vector<TokenId>{12524, 43109, 99406, 73369, 103, 10759, 223, 939, 24, 15, 2616,
                                  15, 2616}));
  EXPECT_EQ(tokenizer_->encode("<｜User｜>hi<｜Assistant｜><think>", true),
            (std::vector<TokenId>{128803, 6366, 128804, 128821}));
}

TEST_F(DeepSeekTokenizer, SpecTokensResolveByString) {
  EXPECT_EQ(tokenizer_->special_token_id("<｜begin▁of▁sentence｜>"), 0);
  EXPECT_EQ(tokenizer_->special_token_id("<｜end▁of▁sentence｜>"), 1);
  EXPECT_EQ(tokenizer_->special_token_id("｜DSML｜"), 128825);
  EXPECT_EQ(tokenizer_->special_token_id("</think>"), 128822);
  EXPECT_EQ(tokenizer_->special_token_id("<｜latest_reminder｜>"), 128828);
  EXPECT_EQ(tokenizer_->token_type(128803), TokenType::kControl);      // <｜User｜>
  EXPECT_EQ(tokenizer_->token_type(128825), TokenType::kUserDefined);  // ｜DSML｜
}

TEST_F(DeepSeekTokenizer, DecodeInvertsEncode) {
  const std::string text = "Grüße 👨‍👩‍👧 \r\n\t ١٢٣ <think>\xff";
  EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text)), text);
}

}  // namespace
}  // namespace v4
