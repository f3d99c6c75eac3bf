// From a parsed request to what the engine runs: the prompt token ids of each prompt (chat:
// rendered by the DeepSeek-V4 encoder, spec §5.8), the engine's sampling settings, and how the
// output is to be read back (thinking, tools, stop strings).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/chat/dsml_parser.h"
#include "model/text/tokenizer.h"
#include "router/openai/engine_client.h"
#include "router/openai/openai_error.h"
#include "router/openai/openai_request.h"

namespace v4::router {

struct PreparedPrompt {
  std::vector<int32_t> ids;
  // Text a completion echoes (completions with echo): the tokens from echo_start on (a text
  // prompt's echo leaves out the BOS the server puts in front).
  std::string echo_text;
  size_t echo_start = 0;
};

struct PreparedRequest {
  std::vector<PreparedPrompt> prompts;  // chat: exactly one
  // max_tokens resolved. The seed is left to the job: choice k of a prompt samples with the
  // request's seed + k, or a fresh random seed when the request has none.
  EngineSampling sampling;
  // Output decoding: thinking (output starts as reasoning), tool parsing, the forced start of
  // the output for tool_choice required/named (already appended to every prompt; the output
  // reader is primed with these tokens so they belong to the first tool call). The forced text
  // is "\n\n<｜DSML｜tool_calls>\n", plus `<｜DSML｜invoke name="NAME">\n` for a named tool; in
  // thinking mode it starts with </think>, so a forced call comes without reasoning.
  // tool_choice "none" renders no tools and parses none.
  bool chat = true;
  bool thinking = false;
  bool parse_tools = false;
  std::vector<int32_t> forced_output;
  std::vector<std::string> stop;
};

// Legacy completions' max_tokens when the request sets none (OpenAI's and vLLM's default).
inline constexpr uint32_t kCompletionsDefaultMaxTokens = 16;

// Renders, tokenizes and checks against `max_context` (prompt + max_tokens; without
// max_tokens a chat output may fill what is left and a completion gets at most
// kCompletionsDefaultMaxTokens; a prompt that leaves no room is an error).
std::optional<ApiError> prepare_request(const OpenAiRequest& request, const Tokenizer& tokenizer,
                                        uint32_t max_context, PreparedRequest& out);

}  // namespace v4::router
