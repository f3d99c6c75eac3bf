// What a completions choice reports of its prompt: the echoed text (echo), and the prompt
// tokens' logprob entries, which lead the choice's logprobs for echo with logprobs (OpenAI's
// legacy completions) and form vLLM's per-choice `prompt_logprobs` member. The first prompt
// token has no score: nothing precedes it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/text/tokenizer.h"
#include "router/openai/choice_output.h"
#include "router/openai/engine_client.h"

namespace v4::router {

struct ChoicePrompt {
  std::string echo;                    // in front of the choice's text; empty without echo
  std::optional<uint32_t> echo_top;    // echo with logprobs N: prompt entries with N alternatives
  std::optional<uint32_t> prompt_top;  // prompt_logprobs M: vLLM's member with M alternatives
  // One per prompt token once scored (empty before); entries[0] is unscored. text_offset counts
  // code points of `echo` before the token (0 for tokens the echo does not show).
  std::vector<LogprobEntry> entries;
  std::vector<uint32_t> ranks;  // per entry: 1 + the number of more likely tokens
  bool wants_scores() const { return echo_top.has_value() || prompt_top.has_value(); }
};

// Fills `prompt.entries` from the engine's scores of `ids[1..]`. The first `echo_start` tokens
// (the BOS a text prompt gets) are not part of the echoed text. False if the scores do not
// match the prompt.
bool score_choice_prompt(const Tokenizer& tokenizer, std::span<const int32_t> ids,
                         size_t echo_start, const std::vector<EnginePromptLogprob>& scores,
                         ChoicePrompt& prompt);

}  // namespace v4::router
