// The request-body JSON parser: linear in the body, bounded, ordered, unknown members dropped.
#include "router/openai/request_json.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace v4::router {
namespace {

const std::set<std::string, std::less<>> kKnown = {"model", "messages", "logit_bias", "tools"};

// {"KEY": {"0": 0, "1": 0, ...}} with `keys` members.
std::string wide_member(const std::string& key, size_t keys) {
  std::string body = "{\"" + key + "\": {";
  for (size_t i = 0; i < keys; ++i) body += (i ? ",\"" : "\"") + std::to_string(i) + "\":0";
  return body + "}}";
}

TEST(RequestJson, KeepsKeyOrderAndTheLastOfDuplicateKeys) {
  RequestJson out;
  ASSERT_FALSE(parse_request_json(R"({"tools": {"z": 1, "a": 2, "z": 3, "m": [1, {"b": 0}]}})", {},
                                  kKnown, out));
  EXPECT_EQ(out.dump(), R"({"tools":{"z":3,"a":2,"m":[1,{"b":0}]}})");
}

TEST(RequestJson, UnknownTopLevelMembersAreNotKept) {
  RequestJson out;
  ASSERT_FALSE(parse_request_json(
      R"({"junk": {"a": [1, {"b": 2}], "c": "d"}, "model": "m", "other": 5, "x": [[]]})", {},
      kKnown, out));
  EXPECT_EQ(out.dump(), R"({"model":"m"})");
}

TEST(RequestJson, LimitsGiveA400NamingTheMember) {
  JsonLimits limits;
  limits.max_object_keys = 8;
  limits.max_array_items = 4;
  limits.max_depth = 5;
  limits.member_object_keys["logit_bias"] = 20;
  RequestJson out;
  std::optional<ApiError> error = parse_request_json(wide_member("tools", 9), limits, kKnown, out);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->status, 400);
  EXPECT_EQ(error->param, "tools");
  EXPECT_NE(error->message.find("more than 8 keys"), std::string::npos) << error->message;
  EXPECT_FALSE(parse_request_json(wide_member("tools", 8), limits, kKnown, out));
  EXPECT_FALSE(parse_request_json(wide_member("logit_bias", 20), limits, kKnown, out));
  EXPECT_TRUE(parse_request_json(wide_member("logit_bias", 21), limits, kKnown, out));
  // An unknown member is skipped, whatever its width.
  EXPECT_FALSE(parse_request_json(wide_member("unknown", 100), limits, kKnown, out));

  error = parse_request_json(R"({"messages": [1, 2, 3, 4, 5]})", limits, kKnown, out);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->param, "messages");
  EXPECT_NE(error->message.find("more than 4 items"), std::string::npos) << error->message;

  EXPECT_FALSE(parse_request_json(R"({"messages": [[[[]]]]})", limits, kKnown, out));
  for (const char* body : {R"({"messages": [[[[[]]]]]})", R"({"unknown": [[[[[]]]]]})"}) {
    error = parse_request_json(body, limits, kKnown, out);
    ASSERT_TRUE(error) << body;
    EXPECT_NE(error->message.find("nests deeper than 5"), std::string::npos) << error->message;
  }
}

TEST(RequestJson, SyntaxErrorsSayWhere) {
  RequestJson out;
  for (const char* body : {"", "{", R"({"model": })", R"({"model": "m"} x)", R"({"a" 1})"}) {
    std::optional<ApiError> error = parse_request_json(body, {}, kKnown, out);
    ASSERT_TRUE(error) << body;
    EXPECT_TRUE(error->message.starts_with("invalid JSON: ")) << error->message;
    EXPECT_EQ(error->param, "");
  }
}

// 200k keys: nlohmann's ordered_json parse compares each key with all earlier ones (about 2e10
// comparisons, minutes); appending with a hash index takes a fraction of a second.
TEST(RequestJson, AWideObjectParsesInLinearTime) {
  const std::string body = wide_member("logit_bias", 200'000);
  JsonLimits limits;
  limits.member_object_keys["logit_bias"] = 200'000;
  RequestJson out;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_FALSE(parse_request_json(body, limits, kKnown, out));
  // About 0.2 s in a release build; the margin is for sanitizers.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(out["logit_bias"].size(), 200'000u);
  EXPECT_EQ(out["logit_bias"].back(), 0);
}

}  // namespace
}  // namespace v4::router
