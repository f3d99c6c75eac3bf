// OpenAI response and stream-chunk JSON for chat completions and completions, built from
// ChoiceOutput's results. Shapes follow OpenAI's API reference (chat.completion,
// chat.completion.chunk, text_completion); `reasoning_content` is DeepSeek's and vLLM's member
// for thinking output.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "router/openai/choice_output.h"
#include "router/openai/choice_prompt.h"
#include "router/openai/openai_request.h"

namespace v4::router {

struct ResponseMeta {
  std::string id;  // "chatcmpl-…" / "cmpl-…"
  int64_t created = 0;
  std::string model;
  Endpoint endpoint = Endpoint::kChat;
  bool logprobs = false;  // include logprobs members (chat: logprobs; completions: logprobs set)
  // OpenAI's system_fingerprint: names the serving configuration ("" is null).
  std::string system_fingerprint;
};

struct Usage {
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  uint32_t cached_tokens = 0;     // prompt tokens whose KV came from the prefix cache
  uint32_t reasoning_tokens = 0;  // completion tokens spent thinking
};

// A whole response; choices[i] is choice index i. `prompts[i]` (completions) is what choice i
// reports of its prompt: echoed text in front of its text, prompt entries in front of its
// logprobs, vLLM's prompt_logprobs.
std::string response_json(const ResponseMeta& meta, const std::vector<const ChoiceOutput*>& choices,
                          const Usage& usage, const std::vector<ChoicePrompt>& prompts = {});

// One stream chunk for choice `index` carrying `delta`; chat's first chunk of a choice also
// carries role "assistant" (`first`). `finish_reason` "" is null. With include_usage every
// chunk has "usage": null. A completions chunk's text_offset counts from the start of the
// generated text (an echoed prompt is not counted; in response_json it is); the prompt's own
// chunk (prompt_chunk_json) comes first.
std::string chunk_json(const ResponseMeta& meta, uint32_t index, const ChoiceDelta& delta,
                       bool first, const std::string& finish_reason, bool include_usage);
// A completions choice's first chunk when it echoes or scores its prompt: the echoed text, its
// prompt entries as logprobs (echo with logprobs) and vLLM's prompt_logprobs.
std::string prompt_chunk_json(const ResponseMeta& meta, uint32_t index, const ChoicePrompt& prompt,
                              bool include_usage);
// The final usage-only chunk (choices: []).
std::string usage_chunk_json(const ResponseMeta& meta, const Usage& usage);

// GET /v1/models.
std::string models_json(const std::string& model, int64_t created, uint32_t max_model_len);

// "data: JSON\n\n" and "data: [DONE]\n\n".
std::string sse_event(const std::string& json);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

}  // namespace v4::router
