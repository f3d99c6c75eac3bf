// One choice's output, token by token: incremental detokenization, stop strings, and (chat)
// reasoning / content / DSML tool-call separation (model/dsml_parser.h), turned into the
// pieces an OpenAI response or stream chunk carries. Spec §5.8.
//
// Order of work per token: the token's bytes go through the UTF-8 stream; ordinary text goes
// through the stop matcher (special tokens flush it: a stop string never spans one); what the
// matcher releases, and each special token, goes to the DSML parser (chat) or straight to the
// text (completions). Special tokens other than the DSML markers are never shown as text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/dsml_parser.h"
#include "model/tokenizer.h"
#include "router/engine_client.h"
#include "router/stop_matcher.h"

namespace v4::router {

struct LogprobEntry {
  int32_t token = 0;
  std::string text;  // the token's bytes, UTF-8 sanitised
  std::vector<uint8_t> bytes;
  float logprob = 0.0f;
  std::vector<std::pair<std::string, float>> top;  // text, logprob
  std::vector<std::vector<uint8_t>> top_bytes;
  std::vector<int32_t> top_tokens;
};

struct ToolCallDelta {
  int index = 0;
  std::string id;    // first delta of a call only
  std::string name;  // first delta of a call only
  std::string arguments;
};

struct ChoiceDelta {
  std::string content;
  std::string reasoning;
  std::vector<ToolCallDelta> tool_calls;
  std::vector<LogprobEntry> logprobs;  // tokens whose text is (at least partly) released
  bool empty() const {
    return content.empty() && reasoning.empty() && tool_calls.empty() && logprobs.empty();
  }
};

struct ChoiceOutputOptions {
  bool chat = true;
  bool thinking = false;
  bool parse_tools = false;
  std::vector<std::string> stop;
  bool logprobs = false;
  uint32_t top_logprobs = 0;
  std::vector<int32_t> forced_output;  // fed first, as if generated (prompt_builder.h)
};

struct ChoiceToolCall {
  std::string id, name, arguments;
  std::string dsml;  // exact invoke bytes, for replay (spec §5.8)
};

class ChoiceOutput {
 public:
  static Result<ChoiceOutput> create(const Tokenizer& tokenizer, ChoiceOutputOptions options);

  // One engine event: returns the delta it releases. A final event flushes everything held.
  ChoiceDelta push(const EngineEvent& event);
  // True once a stop string matched: the caller cancels the engine request; the choice is done.
  bool stopped() const;
  bool done() const { return !finish_reason_.empty(); }
  // "stop", "length", "tool_calls" or "error" once done().
  const std::string& finish_reason() const { return finish_reason_; }
  uint32_t completion_tokens() const { return completion_tokens_; }
  uint32_t cached_tokens() const { return cached_tokens_; }

  // Everything released so far (non-streaming responses).
  const std::string& content() const { return content_; }
  const std::string& reasoning() const { return reasoning_; }
  const std::vector<ChoiceToolCall>& tool_calls() const { return tool_calls_; }
  const std::vector<LogprobEntry>& logprobs() const { return logprobs_; }

 private:
  ChoiceOutput(const Tokenizer& tokenizer, ChoiceOutputOptions options);
  struct State;
  std::shared_ptr<State> state_;
  std::string finish_reason_;
  uint32_t completion_tokens_ = 0;
  uint32_t cached_tokens_ = 0;
  std::string content_, reasoning_;
  std::vector<ChoiceToolCall> tool_calls_;
  std::vector<LogprobEntry> logprobs_;
};

}  // namespace v4::router
