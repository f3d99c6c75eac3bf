// Request -> engine input (spec §5.8): the DeepSeek-V4 chat rendering or the completions
// prompts, the context-length check, and the engine's sampling settings.
#include "router/openai/prompt_builder.h"

#include <algorithm>

#include "model/chat/chat_encoder.h"
#include "model/text/detokenizer.h"

namespace v4::router {
namespace {

// The start of the output that tool_choice "required" / named forces (spec §5.8 layout): an
// assistant turn with no content renders as "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke ...>".
// "required" stops after the block opener (the model picks the tool); a named choice also opens
// that tool's invoke. In thinking mode the output starts as reasoning, and calls may only come
// after it, so the forced text first closes the reasoning with </think>: a forced call skips
// thinking.
std::string forced_tool_text(const OpenAiRequest& request, bool thinking) {
  const std::string dsml = kDsmlText;
  std::string text = thinking ? kThinkEndText : "";
  text += "\n\n<" + dsml + "tool_calls>\n";
  if (request.tool_choice == ToolChoice::kNamed) {
    text += "<" + dsml + "invoke name=\"" + request.tool_choice_name + "\">\n";
  }
  return text;
}

// Strict tools (every offered tool strict): the constraint the worker enforces on the calls,
// model/grammar/dsml_tool_grammar.h's JSON. It starts where the forced text of tool_choice
// required / named leaves the output (spec §5.8 layout), or in free text for "auto". Nothing when
// the output is constrained otherwise (response_format, guided_choice) or the tokenizer has no
// DSML marker.
std::string strict_tools_source(const OpenAiRequest& request, const Tokenizer& tokenizer,
                                bool thinking) {
  if (request.strict_tools == 0 || request.strict_tools != request.chat.tools.size() ||
      request.tool_choice == ToolChoice::kNone ||
      request.constraint != OutputConstraintKind::kNone || !request.guided_choice.empty())
    return "";
  const std::optional<TokenId> marker = tokenizer.special_token_id(kDsmlText);
  if (!marker) return "";
  RequestJson source = RequestJson::object();
  source["marker"] = *marker;
  source["reasoning_end"] = tokenizer.special_token_id(kThinkEndText).value_or(-1);
  source["reasoning"] = thinking;
  source["start"] = request.tool_choice == ToolChoice::kAuto       ? "free"
                    : request.tool_choice == ToolChoice::kRequired ? "block"
                                                                   : "invoke";
  if (request.tool_choice == ToolChoice::kNamed) source["tool"] = request.tool_choice_name;
  if (!request.parallel_tool_calls) source["max_calls"] = 1;
  RequestJson tools = RequestJson::array();
  for (const std::string& text : request.chat.tools) {
    const RequestJson function = RequestJson::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!function.is_object() || !function.contains("name")) return "";
    RequestJson tool = {{"name", function["name"]}};
    if (function.contains("parameters")) tool["parameters"] = function["parameters"];
    tools.push_back(std::move(tool));
  }
  source["tools"] = std::move(tools);
  return source.dump();
}

std::optional<ApiError> prepare_chat(const OpenAiRequest& request, const Tokenizer& tokenizer,
                                     PreparedRequest& out) {
  ChatRequest chat = request.chat;
  if (request.tool_choice == ToolChoice::kNone) chat.tools.clear();
  // A structured output is the whole answer from its first token, so it skips reasoning: the
  // prompt is rendered in non-thinking mode.
  if (request.constraint != OutputConstraintKind::kNone) chat.thinking = false;
  Result<std::string> prompt = render_chat_prompt(chat);
  if (!prompt) return invalid_request(prompt.message(), "messages");
  // The output is reasoning when the prompt opened a <think> (not, e.g., after a task token).
  out.thinking = chat.thinking && prompt->ends_with(kThinkStartText);
  out.parse_tools = !chat.tools.empty();
  PreparedPrompt prepared;
  prepared.ids = tokenizer.encode(*prompt, /*allow_special=*/true);
  if (request.tool_choice == ToolChoice::kRequired || request.tool_choice == ToolChoice::kNamed) {
    out.forced_output = tokenizer.encode(forced_tool_text(request, out.thinking), true);
    prepared.ids.insert(prepared.ids.end(), out.forced_output.begin(), out.forced_output.end());
  }
  out.prompts.push_back(std::move(prepared));
  return std::nullopt;
}

void prepare_completions(const OpenAiRequest& request, const Tokenizer& tokenizer,
                         PreparedRequest& out) {
  // A text prompt is BOS + its plain tokens: control-token spellings in it stay text.
  for (const std::string& text : request.text_prompts) {
    PreparedPrompt prepared;
    if (tokenizer.bos_id() >= 0) prepared.ids.push_back(tokenizer.bos_id());
    prepared.echo_start = prepared.ids.size();
    const std::vector<TokenId> ids = tokenizer.encode(text, /*allow_special=*/false);
    prepared.ids.insert(prepared.ids.end(), ids.begin(), ids.end());
    prepared.echo_text = text;
    out.prompts.push_back(std::move(prepared));
  }
  for (const std::vector<int32_t>& ids : request.token_prompts) {
    PreparedPrompt prepared;
    prepared.ids = ids;
    prepared.echo_text = utf8_replace_invalid(tokenizer.decode(ids));
    out.prompts.push_back(std::move(prepared));
  }
}

std::optional<ApiError> resolve_max_tokens(const OpenAiRequest& request, uint32_t max_context,
                                           PreparedRequest& out) {
  size_t prompt_len = 0;
  for (const PreparedPrompt& prompt : out.prompts)
    prompt_len = std::max(prompt_len, prompt.ids.size());
  const std::string what = request.endpoint == Endpoint::kChat ? "messages" : "prompt";
  const std::string head =
      "This model's maximum context length is " + std::to_string(max_context) + " tokens. ";
  if (request.max_tokens) {
    const uint64_t total = prompt_len + uint64_t{*request.max_tokens};
    if (total > max_context) {
      return invalid_request(head + "However, you requested " + std::to_string(total) +
                                 " tokens (" + std::to_string(prompt_len) + " in the " + what +
                                 ", " + std::to_string(*request.max_tokens) +
                                 " in the completion). Please reduce the length of the " + what +
                                 " or completion.",
                             what, "context_length_exceeded");
    }
    out.sampling.max_tokens = *request.max_tokens;
    return std::nullopt;
  }
  if (prompt_len >= max_context) {
    return invalid_request(head + "However, your " + what + " resulted in " +
                               std::to_string(prompt_len) +
                               " tokens. Please reduce the length of the " + what + ".",
                           what, "context_length_exceeded");
  }
  const uint32_t room = max_context - static_cast<uint32_t>(prompt_len);
  // Without max_tokens, chat may fill the context; legacy completions stop at 16 tokens, as
  // OpenAI's and vLLM's /v1/completions do.
  out.sampling.max_tokens =
      request.endpoint == Endpoint::kChat ? room : std::min(room, kCompletionsDefaultMaxTokens);
  return std::nullopt;
}

// Sampling as the engine applies it. The seed here is the request's (0 when absent); the job
// sets each choice's own seed when it submits it.
void fill_sampling(const OpenAiRequest& request, const Tokenizer& tokenizer, bool thinking,
                   EngineSampling& sampling) {
  sampling.temperature = request.temperature;
  sampling.top_p = request.top_p;
  sampling.top_k = request.top_k < 0 ? 0 : request.top_k;
  sampling.min_p = request.min_p;
  sampling.seed = request.seed.value_or(0);
  sampling.speculative_tokens = request.speculative_tokens;
  sampling.presence_penalty = request.presence_penalty;
  sampling.frequency_penalty = request.frequency_penalty;
  sampling.repetition_penalty = request.repetition_penalty;
  sampling.logit_bias = request.logit_bias;
  sampling.stop_token_ids = request.stop_token_ids;
  const TokenId eos = tokenizer.eos_id();
  if (!request.ignore_eos && eos >= 0 &&
      std::find(sampling.stop_token_ids.begin(), sampling.stop_token_ids.end(), eos) ==
          sampling.stop_token_ids.end()) {
    sampling.stop_token_ids.push_back(eos);
  }
  if (request.endpoint == Endpoint::kChat) {
    sampling.logprobs = request.logprobs;
    sampling.top_logprobs = request.logprobs ? request.top_logprobs : 0;
    sampling.prompt_logprobs = request.prompt_logprobs;
  } else {
    if (request.completion_logprobs) {
      sampling.logprobs = true;
      sampling.top_logprobs = *request.completion_logprobs;
    }
    // Echo with logprobs scores the prompt too (OpenAI); prompt_logprobs is vLLM's way to ask.
    sampling.prompt_logprobs = request.prompt_logprobs;
    if (request.echo && request.completion_logprobs)
      sampling.prompt_logprobs =
          std::max(*request.completion_logprobs, request.prompt_logprobs.value_or(0));
  }
  // A guided choice is the whole visible answer; in thinking mode the output first closes the
  // (empty) reasoning so the choice arrives as content — unless the choice itself holds the
  // </think>, i.e. it spells out reasoning and answer.
  const std::optional<TokenId> think_end = tokenizer.special_token_id(kThinkEndText);
  for (const std::string& choice : request.guided_choice) {
    std::vector<int32_t> ids;
    if (thinking && think_end && choice.find(kThinkEndText) == std::string::npos)
      ids.push_back(*think_end);
    const std::vector<TokenId> text = tokenizer.encode(choice, /*allow_special=*/false);
    ids.insert(ids.end(), text.begin(), text.end());
    sampling.allowed_outputs.push_back(std::move(ids));
  }
  sampling.constraint = request.constraint;
  sampling.constraint_source = request.constraint_source;
}

}  // namespace

std::optional<ApiError> prepare_request(const OpenAiRequest& request, const Tokenizer& tokenizer,
                                        uint32_t max_context, PreparedRequest& out) {
  out = PreparedRequest();
  out.chat = request.endpoint == Endpoint::kChat;
  out.stop = request.stop;
  if (out.chat) {
    if (auto error = prepare_chat(request, tokenizer, out)) return error;
  } else {
    prepare_completions(request, tokenizer, out);
  }
  if (auto error = resolve_max_tokens(request, max_context, out)) return error;
  fill_sampling(request, tokenizer, out.thinking, out.sampling);
  if (out.chat) {
    std::string tools = strict_tools_source(request, tokenizer, out.thinking);
    if (!tools.empty()) {
      out.sampling.constraint = OutputConstraintKind::kDsmlTools;
      out.sampling.constraint_source = std::move(tools);
    }
  }
  return std::nullopt;
}

}  // namespace v4::router
