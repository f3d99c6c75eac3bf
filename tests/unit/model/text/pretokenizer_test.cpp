// Pre-tokenizer splits (spec §5.3). Expected pieces are HF tokenizers' `pre_tokenize_str` output
// for the DeepSeek-V4 tokenizer.json.
#include "model/text/pretokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace v4 {
namespace {

std::vector<std::string> split(std::string_view text) {
  static const Pretokenizer pretokenizer = Pretokenizer::create().value();
  std::vector<std::string_view> pieces;
  pretokenizer.split(text, pieces);
  return {pieces.begin(), pieces.end()};
}

using Pieces = std::vector<std::string>;

TEST(Pretokenizer, DigitsSplitInRunsOfThree) {
  EXPECT_EQ(split("12345 x"), (Pieces{"123", "45", " x"}));
}

TEST(Pretokenizer, CjkAndKanaRunsAreOnePiece) {
  EXPECT_EQ(split("日本語のテキストabc"), (Pieces{"日本語のテキスト", "abc"}));
}

TEST(Pretokenizer, LastSpaceOfARunGoesToTheNextWord) {
  // `\s+(?!\S)` backtracks so the word keeps one leading space.
  EXPECT_EQ(split("a   b"), (Pieces{"a", "  ", " b"}));
  EXPECT_EQ(split("x  "), (Pieces{"x", "  "}));
}

TEST(Pretokenizer, OnePunctuationCharacterGluesToFollowingAsciiLetters) {
  EXPECT_EQ(split("don't .NET"), (Pieces{"don", "'t", " .", "NET"}));
}

TEST(Pretokenizer, NoBreakSpaceBeforeALetterJoinsTheWord) {
  EXPECT_EQ(split("a \u00a0b"), (Pieces{"a", " ", "\u00a0b"}));
  EXPECT_EQ(split("i  \u00a0 x"), (Pieces{"i", "  \u00a0", " x"}));
}

TEST(Pretokenizer, MongolianVowelSeparatorIsNotWhitespace) {
  // Oniguruma's \s excludes U+180E; PCRE2's would include it (see with_oniguruma_space_classes).
  EXPECT_EQ(split("a \u180e\nb"), (Pieces{"a", " ", "\u180e", "\n", "b"}));
}

TEST(Pretokenizer, NewlineRunsAndCrLf) {
  EXPECT_EQ(split("x\r\n\r\n  y"), (Pieces{"x", "\r\n\r\n", " ", " y"}));
}

TEST(Pretokenizer, InvalidBytesArePiecesOfTheirOwn) {
  EXPECT_EQ(split("ab\xff"
                  "cd"),
            (Pieces{"ab", "\xff", "cd"}));
  EXPECT_EQ(split("\xe6\x97 x"), (Pieces{"\xe6", "\x97", " x"}));
}

TEST(Pretokenizer, PiecesCoverRandomBytesExactly) {
  std::mt19937 rng(7);
  const std::string alphabet[] = {"a", " ", "\n", "1", "日", "\xff", "\xc3", "\xa9", "!", "\t"};
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    for (int i = 0; i < 64; ++i) text += alphabet[rng() % std::size(alphabet)];
    std::string joined;
    for (const std::string& piece : split(text)) {
      EXPECT_FALSE(piece.empty());
      joined += piece;
    }
    EXPECT_EQ(joined, text);
  }
}

}  // namespace
}  // namespace v4
