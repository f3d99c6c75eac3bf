// Stop strings on streamed text: every way of splitting a text gives the output a reference
// scan of the whole text gives, and nothing at or after the stop is ever released.
#include "router/openai/stop_matcher.h"

#include <gtest/gtest.h>

#include <random>

namespace v4::router {
namespace {

struct Expected {
  std::string output;
  std::string matched;  // "" when no stop occurs
};

// Reference: read the text byte by byte; the output ends where the first stop string is
// complete (of those completing at the same byte, the longest), cut at that stop's start.
Expected reference(const std::string& text, const std::vector<std::string>& stops) {
  for (size_t end = 1; end <= text.size(); ++end) {
    const std::string* best = nullptr;
    for (const std::string& stop : stops) {
      if (stop.empty() || stop.size() > end) continue;
      if (text.compare(end - stop.size(), stop.size(), stop) != 0) continue;
      if (best == nullptr || stop.size() > best->size()) best = &stop;
    }
    if (best != nullptr) return {text.substr(0, end - best->size()), *best};
  }
  return {text, ""};
}

// Pushes `pieces` and checks what each step may release: always a prefix of the expected
// output (so nothing after a stop leaks), and the whole expected output by the end.
void check_pieces(const std::vector<std::string>& pieces, const std::vector<std::string>& stops,
                  const Expected& expected) {
  StopMatcher matcher(stops);
  std::string released;
  for (const std::string& piece : pieces) {
    released += matcher.push(piece);
    ASSERT_LE(released.size(), expected.output.size());
    ASSERT_EQ(released, expected.output.substr(0, released.size()));
  }
  released += matcher.flush();
  EXPECT_EQ(released, expected.output);
  EXPECT_EQ(matcher.stopped(), !expected.matched.empty());
  EXPECT_EQ(matcher.matched(), expected.matched);
  if (matcher.stopped()) {
    EXPECT_EQ(matcher.push("more"), "");
    EXPECT_EQ(matcher.flush(), "");
  }
}

// Every split of `text` into consecutive non-empty pieces (2^(n-1) of them).
void check_every_split(const std::string& text, const std::vector<std::string>& stops) {
  ASSERT_LE(text.size(), 16u);
  const Expected expected = reference(text, stops);
  const uint32_t splits = text.empty() ? 1u : 1u << (text.size() - 1);
  for (uint32_t mask = 0; mask < splits; ++mask) {
    std::vector<std::string> pieces;
    size_t start = 0;
    for (size_t i = 1; i <= text.size(); ++i) {
      if (i == text.size() || (mask >> (i - 1)) & 1u) {
        pieces.push_back(text.substr(start, i - start));
        start = i;
      }
    }
    SCOPED_TRACE(::testing::Message() << "text \"" << text << "\" split mask " << mask);
    check_pieces(pieces, stops, expected);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(StopMatcher, StopSplitAnywhereIsFoundAndCut) {
  check_every_split("Hello world. Bye", {"world"});
  EXPECT_EQ(reference("Hello world. Bye", {"world"}).output, "Hello ");
}

TEST(StopMatcher, OverlappingOccurrences) {
  // "abab" first completes at the end of "aabab": the output is "a".
  check_every_split("aababab", {"abab"});
  EXPECT_EQ(reference("aababab", {"abab"}).output, "a");
  check_every_split("aaaab", {"aab"});
  check_every_split("abcabd", {"abd"});
}

TEST(StopMatcher, StopsThatArePrefixesOrInfixesOfEachOther) {
  check_every_split("xxabcx", {"abc", "ab"});
  EXPECT_EQ(reference("xxabcx", {"abc", "ab"}).matched, "ab");
  check_every_split("xbcdx", {"bcd", "c"});
  EXPECT_EQ(reference("xbcdx", {"bcd", "c"}).output, "xb");
  check_every_split("xbcx", {"c", "bc"});
  EXPECT_EQ(reference("xbcx", {"c", "bc"}).matched, "bc");
  check_every_split("aaaa", {"aaa", "aa", "a"});
}

TEST(StopMatcher, NoStopReleasesEverything) {
  check_every_split("abcabcab", {"abd", "zz"});
  StopMatcher none({});
  EXPECT_EQ(none.push("text"), "text");
  StopMatcher empty_stop({""});
  EXPECT_EQ(empty_stop.push("text"), "text");
  EXPECT_FALSE(empty_stop.stopped());
}

TEST(StopMatcher, HoldsOnlyWhatCanStillStartAStop) {
  StopMatcher matcher({"END"});
  EXPECT_EQ(matcher.push("abcE"), "abc");
  EXPECT_EQ(matcher.push("N"), "");
  EXPECT_EQ(matcher.push("x"), "ENx");
  EXPECT_EQ(matcher.push("EN"), "");
  EXPECT_EQ(matcher.flush(), "EN");
  EXPECT_FALSE(matcher.stopped());
}

TEST(StopMatcher, Utf8TextAndStops) {
  // Splits fall inside multi-byte characters too; released text stays a prefix of the output.
  check_every_split("héllo wörld", {"ö"});
  check_every_split("a日本語b", {"本語"});
  check_every_split("x🤔y🤔", {"y🤔", "🤔z"});
  EXPECT_EQ(reference("x🤔y🤔", {"y🤔", "🤔z"}).output, "x🤔");
}

TEST(StopMatcher, RandomTextsAgreeWithTheReference) {
  std::mt19937 rng(7);
  auto random_text = [&](size_t max_len) {
    std::string text(rng() % (max_len + 1), 'a');
    for (char& c : text) c = "abc"[rng() % 3];
    return text;
  };
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<std::string> stops;
    for (unsigned i = 0, count = rng() % 4; i < count; ++i) stops.push_back(random_text(4));
    check_every_split(random_text(10), stops);
    if (HasFailure()) return;
  }
}

}  // namespace
}  // namespace v4::router
