// OpenAI error bodies: status, type, and null param/code when empty.
#include "router/openai/openai_error.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace v4::router {
namespace {

using Json = nlohmann::json;

TEST(OpenAiError, HelpersSetStatusAndType) {
  struct Case {
    ApiError error;
    int status;
    std::string type;
  };
  const Case cases[] = {
      {invalid_request("bad", "n"), 400, "invalid_request_error"},
      {not_found("no model", "model_not_found"), 404, "invalid_request_error"},
      {unauthorized("no key"), 401, "authentication_error"},
      {too_large("big"), 413, "invalid_request_error"},
      {overloaded("busy"), 429, "rate_limit_error"},
      {server_error("boom"), 500, "server_error"},
      {server_error("draining", 503), 503, "server_error"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.error.status, c.status) << c.error.message;
    EXPECT_EQ(c.error.type, c.type) << c.error.message;
  }
  EXPECT_EQ(not_found("x", "model_not_found").code, "model_not_found");
}

TEST(OpenAiError, JsonBody) {
  const Json full = Json::parse(
      api_error_json(invalid_request("'n' must be between 1 and 16, got 0", "n", "bad_n")));
  ASSERT_TRUE(full.contains("error"));
  EXPECT_EQ(full.size(), 1u);
  const Json& e = full["error"];
  EXPECT_EQ(e["message"], "'n' must be between 1 and 16, got 0");
  EXPECT_EQ(e["type"], "invalid_request_error");
  EXPECT_EQ(e["param"], "n");
  EXPECT_EQ(e["code"], "bad_n");

  const Json bare = Json::parse(api_error_json(invalid_request("invalid JSON: x")));
  EXPECT_TRUE(bare["error"]["param"].is_null());
  EXPECT_TRUE(bare["error"]["code"].is_null());
  EXPECT_TRUE(bare["error"].contains("param"));
  EXPECT_TRUE(bare["error"].contains("code"));
}

TEST(OpenAiError, MessageWithInvalidUtf8StillSerialises) {
  const Json body = Json::parse(api_error_json(invalid_request("bad byte \xff here")));
  EXPECT_EQ(body["error"]["message"], "bad byte \xEF\xBF\xBD here");
}

}  // namespace
}  // namespace v4::router
