// Parsing and validation of OpenAI request bodies for POST /v1/chat/completions and
// POST /v1/completions. Every member is type- and range-checked; the first problem is returned
// as an ApiError naming the member in `param`. Unknown members are ignored, as OpenAI does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/chat/chat_request.h"
#include "model/grammar/json_grammar.h"
#include "router/openai/openai_error.h"
#include "router/openai/request_json.h"

namespace v4::router {

enum class Endpoint { kChat, kCompletions };

enum class ToolChoice { kAuto, kNone, kRequired, kNamed };

struct OpenAiRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;

  // Chat: messages, tools, thinking / reasoning_effort (model/chat/chat_request.h's parser).
  ChatRequest chat;
  ToolChoice tool_choice = ToolChoice::kAuto;  // "auto" when tools are given, else "none"
  std::string tool_choice_name;                // kNamed
  bool parallel_tool_calls = true;
  // Function tools marked `strict: true`. When every tool is strict, the calls the model writes
  // are enforced by constrained decoding (model/grammar/dsml_tool_grammar.h, spec §5.8): offered
  // names, the schema's parameters, valid values. With some tools not strict nothing is.
  size_t strict_tools = 0;
  bool logprobs = false;      // chat: logprobs (bool)
  uint32_t top_logprobs = 0;  // chat: 0..20, needs logprobs

  // Completions: one prompt per entry (a string, or token ids given as integers).
  std::vector<std::string> text_prompts;
  std::vector<std::vector<int32_t>> token_prompts;
  bool echo = false;
  std::optional<uint32_t> completion_logprobs;  // completions: logprobs 0..5
  std::optional<uint32_t> prompt_logprobs;      // vLLM extension, 0..20

  bool stream = false;
  bool include_usage = false;           // stream_options.include_usage
  uint32_t n = 1;                       // 1..16
  std::optional<uint32_t> max_tokens;   // max_tokens or max_completion_tokens (prompt_builder.h)
  std::vector<std::string> stop;        // string or array of up to 4 non-empty strings
  std::vector<int32_t> stop_token_ids;  // vLLM extension
  float temperature = 1.0f;             // 0..2
  float top_p = 1.0f;                   // (0, 1]
  int32_t top_k = 0;                    // vLLM extension; 0 or -1: off
  float min_p = 0.0f;                   // vLLM extension; [0, 1]
  float presence_penalty = 0.0f;        // -2..2
  float frequency_penalty = 0.0f;       // -2..2
  float repetition_penalty = 1.0f;      // vLLM extension; > 0
  std::optional<uint64_t> seed;
  // v4serve extension: MTP drafts per decode step, 0 to 3 (unset: the server's
  // --speculative-tokens). Changes speed only, never the tokens.
  std::optional<uint32_t> speculative_tokens;
  std::vector<std::pair<int32_t, float>> logit_bias;  // ids as strings -> -100..100
  // vLLM's guided_choice (also structured_outputs.choice): the output is one of these texts.
  std::vector<std::string> guided_choice;
  // Structured output: response_format json_object / json_schema (also vLLM's guided_json and
  // structured_outputs.json), or vLLM's guided_regex (structured_outputs.regex). The schema or
  // pattern is checked here (what cannot be enforced is a 400) and travels as text. Such
  // requests render in non-thinking mode.
  OutputConstraintKind constraint = OutputConstraintKind::kNone;
  std::string constraint_source;
  bool ignore_eos = false;  // vLLM extension
  std::string user;

  // What an ApiFront keeps from parsing a body to writing its response (members the response
  // echoes, a conversation to store); the OpenAI front keeps nothing.
  std::shared_ptr<const void> front_state;
};

// Parses a request body. `vocab_size` bounds token ids (logit_bias, prompts, stop_token_ids).
// Returns std::nullopt and fills `out`, or the error.
std::optional<ApiError> parse_openai_request(Endpoint endpoint, std::string_view body,
                                             size_t vocab_size, OpenAiRequest& out);

// A JSON schema for structured output (an object, or a JSON text of one): compiled to check it,
// then kept in `out` as text. Errors name `param`, and the unsupported keyword if any.
std::optional<ApiError> read_schema_constraint(const RequestJson& schema, const std::string& param,
                                               OpenAiRequest& out);

// A tool marked strict: its parameters schema (null: none) compiled to check that it can be
// enforced; an unsupported keyword is a 400 naming it, as for response_format. `where` names
// the tool in the message ("tools[2]").
std::optional<ApiError> check_strict_tool(const std::string& name, const RequestJson& parameters,
                                          const std::string& where);

}  // namespace v4::router
