// random_id: the prefix, the length, only characters of the alphabet, every character of a small
// alphabet reachable, and no repeats among many draws.
#include "core/random_id.h"

#include <gtest/gtest.h>

#include <set>

namespace v4 {
namespace {

TEST(RandomId, PrefixLengthAndAlphabet) {
  for (std::string_view alphabet : {kHexDigits, kBase62Digits}) {
    const std::string id = random_id("call_", 24, alphabet);
    ASSERT_EQ(id.size(), 5u + 24u);
    EXPECT_EQ(id.substr(0, 5), "call_");
    for (char c : id.substr(5)) EXPECT_NE(alphabet.find(c), std::string_view::npos) << c;
  }
  EXPECT_EQ(random_id("x-", 0, kHexDigits), "x-");
}

TEST(RandomId, DrawsEveryDigitAndDoesNotRepeat) {
  std::set<char> seen;
  for (char c : random_id("", 4000, "abc")) seen.insert(c);
  EXPECT_EQ(seen, (std::set<char>{'a', 'b', 'c'}));
  std::set<std::string> ids;
  for (int i = 0; i < 10000; ++i) ids.insert(random_id("", 24, kBase62Digits));
  EXPECT_EQ(ids.size(), 10000u);
}

}  // namespace
}  // namespace v4
