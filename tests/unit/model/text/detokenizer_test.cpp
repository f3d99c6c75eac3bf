// Streaming decode (spec §5.3): complete UTF-8 only, nothing lost or repeated; ill-formed bytes
// become U+FFFD like Python's bytes.decode("utf-8", "replace").
#include "model/text/detokenizer.h"

#include <gtest/gtest.h>

#include <random>

#include "model/text/byte_level.h"

namespace v4 {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

std::string streamed(std::string_view bytes, size_t chunk) {
  Utf8Stream stream;
  std::string out;
  for (size_t pos = 0; pos < bytes.size(); pos += chunk) {
    const std::string piece = stream.push(bytes.substr(pos, chunk));
    // Every chunk on its own is well-formed UTF-8.
    for (size_t i = 0; i < piece.size();) {
      const size_t length = utf8_sequence_length(piece, i);
      EXPECT_NE(length, 0u) << "broken UTF-8 emitted";
      i += length ? length : 1;
    }
    out += piece;
  }
  return out + stream.finish();
}

TEST(Utf8Stream, HoldsBackASplitCharacter) {
  Utf8Stream stream;
  EXPECT_EQ(stream.push("a\xe4\xb8"), "a");
  EXPECT_TRUE(stream.has_pending());
  EXPECT_EQ(stream.push("\xad"
                        "b"),
            "中b");
  EXPECT_EQ(stream.finish(), "");
}

// Expected values: Python 3.11 `bytes.decode("utf-8", "replace")`.
TEST(Utf8Stream, ReplacesMaximalIllFormedSubparts) {
  EXPECT_EQ(utf8_replace_invalid("\xe6\x97x"), kFffd + "x");
  EXPECT_EQ(utf8_replace_invalid("\xf0\x80"), kFffd + kFffd);
  EXPECT_EQ(utf8_replace_invalid("\xed\xa0\x80"), kFffd + kFffd + kFffd);
  EXPECT_EQ(utf8_replace_invalid("\xc0\xaf"), kFffd + kFffd);
  EXPECT_EQ(utf8_replace_invalid("\xf4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);
  EXPECT_EQ(utf8_replace_invalid("ok\xff"), "ok" + kFffd);
  EXPECT_EQ(utf8_replace_invalid("\xf0\x9f\x98"), kFffd);
}

TEST(Utf8Stream, AnyChunkingEqualsOneShot) {
  std::mt19937 rng(11);
  const std::string parts[] = {"a", "é", "中", "🙂", "\xff", "\xe6\x97", "\xf0\x9f", "\x80", " "};
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes;
    for (int i = 0; i < 40; ++i) bytes += parts[rng() % std::size(parts)];
    const std::string expected = utf8_replace_invalid(bytes);
    for (size_t chunk : {1u, 2u, 3u, 5u, 64u}) EXPECT_EQ(streamed(bytes, chunk), expected);
  }
}

TEST(IncrementalDetokenizer, StreamsTokensWithoutBreakingCharacters) {
  TokenizerVocab vocab;
  for (int b = 0; b < 256; ++b) vocab.tokens.push_back(byte_level_symbols()[b]);
  Tokenizer tok = Tokenizer::from_vocab(vocab).value();
  const std::string text = "日本 🙂!";
  const std::vector<TokenId> ids = tok.encode(text);
  IncrementalDetokenizer detok(tok);
  std::string out;
  std::vector<std::string> chunks;
  for (TokenId id : ids) {
    chunks.push_back(detok.push(id));
    out += chunks.back();
  }
  out += detok.finish();
  EXPECT_EQ(out, text);
  EXPECT_EQ(chunks[0], "");  // first byte of 日 alone is held back
  EXPECT_EQ(chunks[2], "日");
}

}  // namespace
}  // namespace v4
