// One choice's output, token by token: incremental detokenization, stop strings, and (chat)
// reasoning / content / DSML tool-call separation (model/chat/dsml_parser.h), turned into the
// pieces an OpenAI response or stream chunk carries. Spec §5.8.
//
// Order of work per token: the token's bytes go through the UTF-8 stream; ordinary text goes
// through the stop matcher (special tokens flush it: a stop string never spans one); what the
// matcher releases, and each special token, goes to the DSML parser (chat) or straight to the
// text (completions). Special tokens other than the DSML markers are never shown as text.
//
// Special tokens are the control tokens (EOS, BOS, ...) and, in chat, the two markers while
// they act as markup: </think> while reasoning, and ｜DSML｜ outside reasoning when tools are
// parsed. Otherwise the markers are user-defined tokens and read as ordinary text: with
// parse_tools off a DSML block reaches the client verbatim as content, never as tool calls.
// Stop strings apply to reasoning and prose; once the first DSML marker is parsed the rest of
// the output is the tool-call block, which goes straight to the parser (a stop string such as
// "\n" would otherwise cut every call apart). With single_tool_call the output ends at the
// first complete invoke, with finish reason "tool_calls".
//
// A tool call is only ever reported whole: a call's id, name and arguments go out in one delta
// when its invoke closes. Markup that breaks the grammar never swallows the answer: the parser
// hands it back as content (with the unfinished call dropped), the output goes on, and
// warnings() says what was wrong; so does an output the model ends inside a block (EOS before
// the block closes). An output the model ends inside its reasoning (no </think>) also gets that
// reasoning as content, at the end. Output cut inside a block by the length limit or a
// cancellation ends without the unfinished block ("length", "abort"). With require_tool_call
// (tool_choice "required" or a named function) the output must be a call: malformed markup
// ends it at once with finish reason "error" (error() says why), as does an output without a
// complete call.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/chat/dsml_parser.h"
#include "model/text/tokenizer.h"
#include "router/openai/engine_client.h"
#include "router/openai/stop_matcher.h"

namespace v4::router {

struct LogprobEntry {
  int32_t token = 0;
  std::string text;  // the token's bytes, UTF-8 sanitised
  std::vector<uint8_t> bytes;
  float logprob = 0.0f;
  std::vector<std::pair<std::string, float>> top;  // text, logprob
  std::vector<std::vector<uint8_t>> top_bytes;
  std::vector<int32_t> top_tokens;
  // Unicode code points of the output text before this token's (completions' text_offset).
  uint32_t text_offset = 0;
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
  // Tool-call ids are this prefix + the call's index; callers make it unique per choice.
  std::string tool_call_id_prefix = "call_";
  // parallel_tool_calls=false: the output ends once its first tool call is complete; what the
  // model writes after that invoke is dropped.
  bool single_tool_call = false;
  // tool_choice "required" or named: an output that ends without a complete call is an error.
  bool require_tool_call = false;
};

struct ChoiceToolCall {
  std::string id, name, arguments;
  std::string dsml;  // exact invoke bytes, for replay (spec §5.8)
};

// Holds a reference to the tokenizer, which must outlive it.
class ChoiceOutput {
 public:
  static Result<ChoiceOutput> create(const Tokenizer& tokenizer, ChoiceOutputOptions options);

  // One engine event: returns the delta it releases. A final event flushes everything held.
  // The first call's delta also carries what the forced output produced. A kStop event's token
  // is the stop token: counted, never shown, no logprob entry. Events after done() are ignored.
  ChoiceDelta push(const EngineEvent& event);
  // True once the output ended before the engine's request did (a stop string matched, or
  // the one tool call single_tool_call allows is complete): the caller cancels the engine
  // request; the choice is done.
  bool stopped() const;
  bool done() const { return !finish_reason_.empty(); }
  // "stop", "length", "tool_calls", "error" or "abort" once done(). "tool_calls" replaces "stop"
  // when a call was parsed; "abort" (vLLM's word) is a cancellation without a matched stop
  // string: a kCancelled event after a stop string keeps "stop".
  const std::string& finish_reason() const { return finish_reason_; }
  // The stop string that ended the output ("" when none did).
  const std::string& stop_string() const;
  // Why the model's output was refused when finish_reason() is "error" for that reason (""
  // when the engine failed instead).
  const std::string& error() const { return error_; }
  uint32_t completion_tokens() const { return completion_tokens_; }
  uint32_t cached_tokens() const { return cached_tokens_; }
  // Generated tokens up to and including the </think> that ends the reasoning.
  uint32_t reasoning_tokens() const { return reasoning_tokens_; }

  // Everything released so far (non-streaming responses).
  const std::string& content() const { return content_; }
  const std::string& reasoning() const { return reasoning_; }
  const std::vector<ChoiceToolCall>& tool_calls() const { return tool_calls_; }
  const std::vector<LogprobEntry>& logprobs() const { return logprobs_; }
  // What broke the chat format and was returned as content instead (for logs and metrics).
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  ChoiceOutput(const Tokenizer& tokenizer, ChoiceOutputOptions options);
  void on_token(const EngineEvent& event, ChoiceDelta& delta);
  void on_special(int32_t token, LogprobEntry* entry, ChoiceDelta& delta);
  void on_text(std::string_view text, ChoiceDelta& delta);
  void to_parser(int32_t token, std::string_view bytes, ChoiceDelta& delta);
  void apply(std::vector<DsmlEvent>& events, ChoiceDelta& delta);
  void release_logprobs(bool all, ChoiceDelta& delta);
  // `by_model`: the model ended the output (EOS or a stop token), not a limit or the client.
  void finalize(ChoiceDelta& delta, bool by_model);
  void finish(std::string reason);
  void on_warning(const std::string& what);
  struct State;
  std::shared_ptr<State> state_;
  std::string finish_reason_;
  std::string error_;
  uint32_t completion_tokens_ = 0;
  uint32_t cached_tokens_ = 0;
  uint32_t reasoning_tokens_ = 0;
  std::string content_, reasoning_;
  std::vector<ChoiceToolCall> tool_calls_;
  std::vector<LogprobEntry> logprobs_;
  std::vector<std::string> warnings_;
};

}  // namespace v4::router
