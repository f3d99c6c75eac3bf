// Typed, range-checked access to the members of an OpenAI request body, shared by the parts of
// parse_openai_request. Every failure is an ApiError naming the member in `param`, worded like
// OpenAI's ("'n' must be between 1 and 16, got 0"). A member that is absent or null reads as
// not given, as the OpenAI SDKs mean it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "router/openai/openai_error.h"
#include "router/openai/openai_request.h"
#include "router/openai/request_json.h"

namespace v4::router {

// "a string", "an integer", "null", ... for messages.
std::string json_type_name(const RequestJson& value);
// A number in messages: integers as integers, others with up to 6 significant digits.
std::string number_text(double value);

struct Range {
  double low, high;
  bool low_open = false;  // low itself is out of range
};

class RequestReader {
 public:
  explicit RequestReader(const RequestJson& body) : body_(body) {}

  const RequestJson& body() const { return body_; }

  // The member, or nullptr when absent or null.
  const RequestJson* find(const char* key) const;

  std::optional<ApiError> boolean(const char* key, bool& out) const;
  std::optional<ApiError> string(const char* key, std::string& out) const;
  // An integer (a float with an integral value counts) in [low, high].
  std::optional<ApiError> integer(const char* key, int64_t low, int64_t high,
                                  std::optional<int64_t>& out) const;
  std::optional<ApiError> number(const char* key, Range range, float& out) const;
  // A string, or an array of at most `max_items` strings; each non-empty.
  std::optional<ApiError> strings(const char* key, size_t max_items,
                                  std::vector<std::string>& out) const;
  // An array of token ids below vocab_size.
  std::optional<ApiError> token_ids(const char* key, size_t vocab_size,
                                    std::vector<int32_t>& out) const;

 private:
  const RequestJson& body_;
};

ApiError type_error(const std::string& key, const std::string& expected, const RequestJson& got);

// A tool name that may be written into DSML markup: 1 to 64 characters of a-z, A-Z, 0-9, '_',
// '-', '.' and ':'.
bool valid_tool_name(const std::string& name);

// The chat-only members of parse_openai_request (openai_request_chat.cpp): messages and the
// rest of model/chat/chat_request.h's members, tools, tool_choice, parallel_tool_calls, logprobs,
// top_logprobs.
std::optional<ApiError> read_chat_members(const RequestReader& reader, OpenAiRequest& out);

}  // namespace v4::router
