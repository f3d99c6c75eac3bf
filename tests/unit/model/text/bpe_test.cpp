// Byte-level BPE merge order (spec §5.3): lowest rank first, leftmost on ties.
#include "model/text/bpe.h"

#include <gtest/gtest.h>

#include "model/text/byte_level.h"

namespace v4 {
namespace {

// A vocabulary of the 256 byte symbols (ids 0..255) plus `extra` strings after them.
std::unordered_map<std::string, TokenId> vocab_with(const std::vector<std::string>& extra) {
  std::unordered_map<std::string, TokenId> vocab;
  for (int b = 0; b < 256; ++b) vocab[byte_level_symbols()[b]] = b;
  for (const std::string& s : extra) vocab.emplace(s, static_cast<TokenId>(vocab.size()));
  return vocab;
}

std::vector<TokenId> encode(const BpeModel& bpe, std::string_view piece) {
  std::vector<TokenId> out;
  bpe.encode_piece(piece, out);
  return out;
}

TEST(BpeModel, LowerRankMergesFirst) {
  auto vocab = vocab_with({"ab", "bc", "abc"});
  BpeModel bpe = BpeModel::create(vocab, {"b c", "a b", "ab c"}).value();
  // "b c" (rank 0) wins over "a b" (rank 1); "a bc" is no merge.
  EXPECT_EQ(encode(bpe, "abc"), (std::vector<TokenId>{'a', vocab["bc"]}));
}

TEST(BpeModel, TiesMergeLeftmostFirst) {
  auto vocab = vocab_with({"aa"});
  BpeModel bpe = BpeModel::create(vocab, {"a a"}).value();
  EXPECT_EQ(encode(bpe, "aaa"), (std::vector<TokenId>{vocab["aa"], 'a'}));
  EXPECT_EQ(encode(bpe, "aaaa"), (std::vector<TokenId>{vocab["aa"], vocab["aa"]}));
}

TEST(BpeModel, MergedTokensMergeAgain) {
  auto vocab = vocab_with({"ĠĠ", "ĠĠĠĠ"});
  BpeModel bpe = BpeModel::create(vocab, {"Ġ Ġ", "ĠĠ ĠĠ"}).value();
  EXPECT_EQ(encode(bpe, "     "), (std::vector<TokenId>{vocab["ĠĠĠĠ"], vocab["Ġ"]}));
}

TEST(BpeModel, MergesWithUnknownPartsAreSkipped) {
  auto vocab = vocab_with({"ab"});
  Result<BpeModel> bpe = BpeModel::create(vocab, {"x yz", "a b"});
  ASSERT_TRUE(bpe.is_ok());
  EXPECT_EQ(bpe->merge_count(), 1u);
}

TEST(BpeModel, RejectsMergeWithoutSpaceAndMissingByteSymbols) {
  EXPECT_FALSE(BpeModel::create(vocab_with({}), {"ab"}).is_ok());
  std::unordered_map<std::string, TokenId> partial{{"a", 0}};
  EXPECT_FALSE(BpeModel::create(partial, {}).is_ok());
}

TEST(BpeModel, EveryByteEncodesAlone) {
  BpeModel bpe = BpeModel::create(vocab_with({}), {}).value();
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(encode(bpe, std::string(1, static_cast<char>(b))), (std::vector<TokenId>{b}));
  }
}

}  // namespace
}  // namespace v4
