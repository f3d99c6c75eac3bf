// OpenAI response shapes (API reference: chat.completion, chat.completion.chunk,
// text_completion, model list). Members that OpenAI makes optional are left out when empty so
// the SDKs' accumulators see exactly what changed.
#include "router/openai/openai_response.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

namespace v4::router {
namespace {

using Json = nlohmann::ordered_json;

// JSON has no -inf; a token the engine rules out gets vLLM's floor instead. The float is
// written with its shortest decimal ("-0.1", not "-0.10000000149011612").
double finite_logprob(float logprob) {
  if (!(logprob > -9999.0f)) return -9999.0;
  char text[32];
  const auto written = std::to_chars(text, text + sizeof text, logprob);
  double value = logprob;
  std::from_chars(text, written.ptr, value);
  return value;
}

std::string dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json head(const ResponseMeta& meta, const char* object) {
  Json out;
  out["id"] = meta.id;
  out["object"] = object;
  out["created"] = meta.created;
  out["model"] = meta.model;
  out["system_fingerprint"] =
      meta.system_fingerprint.empty() ? Json() : Json(meta.system_fingerprint);
  return out;
}

Json usage_json(const Usage& usage) {
  Json out;
  out["prompt_tokens"] = usage.prompt_tokens;
  out["completion_tokens"] = usage.completion_tokens;
  out["total_tokens"] = uint64_t{usage.prompt_tokens} + usage.completion_tokens;
  out["prompt_tokens_details"] = Json{{"cached_tokens", usage.cached_tokens}};
  out["completion_tokens_details"] = Json{{"reasoning_tokens", usage.reasoning_tokens}};
  return out;
}

Json finish_json(const std::string& reason) { return reason.empty() ? Json() : Json(reason); }

// Chat logprobs: {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}.
Json chat_logprobs(const std::vector<LogprobEntry>& entries) {
  Json content = Json::array();
  for (const LogprobEntry& entry : entries) {
    Json item;
    item["token"] = entry.text;
    item["logprob"] = finite_logprob(entry.logprob);
    item["bytes"] = entry.bytes;
    item["top_logprobs"] = Json::array();
    for (size_t i = 0; i < entry.top.size(); ++i) {
      Json top;
      top["token"] = entry.top[i].first;
      top["logprob"] = finite_logprob(entry.top[i].second);
      top["bytes"] = i < entry.top_bytes.size() ? Json(entry.top_bytes[i]) : Json::array();
      item["top_logprobs"].push_back(std::move(top));
    }
    content.push_back(std::move(item));
  }
  return Json{{"content", std::move(content)}};
}

// Legacy completions logprobs: parallel arrays; text_offset counts code points from `offset`.
Json completion_logprobs(const std::vector<LogprobEntry>& entries, uint32_t offset) {
  Json tokens = Json::array(), logprobs = Json::array(), tops = Json::array(),
       offsets = Json::array();
  for (const LogprobEntry& entry : entries) {
    tokens.push_back(entry.text);
    logprobs.push_back(finite_logprob(entry.logprob));
    Json top = Json::object();
    for (const auto& [text, logprob] : entry.top) {
      if (!top.contains(text)) top[text] = finite_logprob(logprob);
    }
    tops.push_back(std::move(top));
    offsets.push_back(offset + entry.text_offset);
  }
  return Json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(logprobs)},
              {"top_logprobs", std::move(tops)},
              {"text_offset", std::move(offsets)}};
}

uint32_t code_points(const std::string& text) {
  return static_cast<uint32_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

// Echo with logprobs: the prompt's entries lead the arrays, the first prompt token with null
// logprob and null top_logprobs (OpenAI's shape). Unscored prompts add nothing.
Json with_prompt_logprobs(Json generated, const ChoicePrompt& prompt) {
  if (!prompt.echo_top || prompt.entries.empty()) return generated;
  Json tokens = Json::array(), logprobs = Json::array(), tops = Json::array(),
       offsets = Json::array();
  for (size_t i = 0; i < prompt.entries.size(); ++i) {
    const LogprobEntry& entry = prompt.entries[i];
    tokens.push_back(entry.text);
    offsets.push_back(entry.text_offset);
    if (i == 0) {
      logprobs.push_back(nullptr);
      tops.push_back(nullptr);
      continue;
    }
    logprobs.push_back(finite_logprob(entry.logprob));
    Json top = Json::object();
    for (size_t k = 0; k < entry.top.size() && k < *prompt.echo_top; ++k)
      if (!top.contains(entry.top[k].first))
        top[entry.top[k].first] = finite_logprob(entry.top[k].second);
    tops.push_back(std::move(top));
  }
  for (auto [key, prefix] :
       {std::pair{"tokens", &tokens}, std::pair{"token_logprobs", &logprobs},
        std::pair{"top_logprobs", &tops}, std::pair{"text_offset", &offsets}}) {
    for (Json& item : generated[key]) prefix->push_back(std::move(item));
    generated[key] = std::move(*prefix);
  }
  return generated;
}

// vLLM's prompt_logprobs: per prompt token null (the first) or {token id: {logprob, rank,
// decoded_token}} holding the prompt token and the M most likely tokens.
Json vllm_prompt_logprobs(const ChoicePrompt& prompt) {
  Json list = Json::array();
  for (size_t i = 0; i < prompt.entries.size(); ++i) {
    if (i == 0) {
      list.push_back(nullptr);
      continue;
    }
    const LogprobEntry& entry = prompt.entries[i];
    Json position = Json::object();
    position[std::to_string(entry.token)] = Json{{"logprob", finite_logprob(entry.logprob)},
                                                 {"rank", prompt.ranks[i]},
                                                 {"decoded_token", entry.text}};
    for (size_t k = 0; k < entry.top.size() && k < *prompt.prompt_top; ++k) {
      const std::string id = std::to_string(entry.top_tokens[k]);
      if (position.contains(id)) continue;
      position[id] = Json{{"logprob", finite_logprob(entry.top[k].second)},
                          {"rank", k + 1},
                          {"decoded_token", entry.top[k].first}};
    }
    list.push_back(std::move(position));
  }
  return list;
}

Json chat_message(const ChoiceOutput& choice) {
  Json message;
  message["role"] = "assistant";
  const bool calls = !choice.tool_calls().empty();
  message["content"] = calls && choice.content().empty() ? Json() : Json(choice.content());
  message["refusal"] = nullptr;  // the model has no refusal channel; SDKs read the member
  if (!choice.reasoning().empty()) message["reasoning_content"] = choice.reasoning();
  if (calls) {
    Json list = Json::array();
    for (const ChoiceToolCall& call : choice.tool_calls()) {
      list.push_back(Json{{"id", call.id},
                          {"type", "function"},
                          {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
    }
    message["tool_calls"] = std::move(list);
  }
  return message;
}

Json chat_delta(const ChoiceDelta& delta, bool first) {
  Json out = Json::object();
  if (first) out["role"] = "assistant";
  if (!delta.content.empty()) out["content"] = delta.content;
  if (!delta.reasoning.empty()) out["reasoning_content"] = delta.reasoning;
  if (!delta.tool_calls.empty()) {
    Json list = Json::array();
    for (const ToolCallDelta& call : delta.tool_calls) {
      Json item;
      item["index"] = call.index;
      Json function = Json::object();
      if (!call.id.empty()) {
        // The first delta of a call: the SDK accumulators take id, type and name from it.
        item["id"] = call.id;
        item["type"] = "function";
        function["name"] = call.name;
      }
      function["arguments"] = call.arguments;
      item["function"] = std::move(function);
      list.push_back(std::move(item));
    }
    out["tool_calls"] = std::move(list);
  }
  return out;
}

}  // namespace

std::string response_json(const ResponseMeta& meta, const std::vector<const ChoiceOutput*>& choices,
                          const Usage& usage, const std::vector<ChoicePrompt>& prompts) {
  const bool chat = meta.endpoint == Endpoint::kChat;
  Json out = head(meta, chat ? "chat.completion" : "text_completion");
  Json list = Json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceOutput& choice = *choices[i];
    Json item;
    item["index"] = i;
    if (chat) {
      item["message"] = chat_message(choice);
      item["logprobs"] = meta.logprobs ? chat_logprobs(choice.logprobs()) : Json();
    } else {
      const ChoicePrompt prompt = i < prompts.size() ? prompts[i] : ChoicePrompt{};
      item["text"] = prompt.echo + choice.content();
      item["logprobs"] =
          meta.logprobs
              ? with_prompt_logprobs(
                    completion_logprobs(choice.logprobs(), code_points(prompt.echo)), prompt)
              : Json();
      if (prompt.prompt_top) item["prompt_logprobs"] = vllm_prompt_logprobs(prompt);
    }
    item["finish_reason"] = finish_json(choice.finish_reason());
    list.push_back(std::move(item));
  }
  out["choices"] = std::move(list);
  // vLLM returns a chat's prompt_logprobs once, beside the choices: they share the prompt.
  if (chat && !prompts.empty() && prompts.front().prompt_top) {
    out["prompt_logprobs"] = vllm_prompt_logprobs(prompts.front());
  }
  out["usage"] = usage_json(usage);
  return dump(out);
}

std::string chunk_json(const ResponseMeta& meta, uint32_t index, const ChoiceDelta& delta,
                       bool first, const std::string& finish_reason, bool include_usage) {
  const bool chat = meta.endpoint == Endpoint::kChat;
  Json out = head(meta, chat ? "chat.completion.chunk" : "text_completion");
  Json item;
  item["index"] = index;
  const bool logprobs = meta.logprobs && !delta.logprobs.empty();
  if (chat) {
    item["delta"] = chat_delta(delta, first);
    item["logprobs"] = logprobs ? chat_logprobs(delta.logprobs) : Json();
  } else {
    item["text"] = delta.content;
    item["logprobs"] = logprobs ? completion_logprobs(delta.logprobs, 0) : Json();
  }
  item["finish_reason"] = finish_json(finish_reason);
  out["choices"] = Json::array({std::move(item)});
  if (include_usage) out["usage"] = nullptr;
  return dump(out);
}

std::string prompt_chunk_json(const ResponseMeta& meta, uint32_t index, const ChoicePrompt& prompt,
                              bool include_usage) {
  Json out = head(meta, "text_completion");
  Json item;
  item["index"] = index;
  item["text"] = prompt.echo;
  item["logprobs"] = meta.logprobs && prompt.echo_top && !prompt.entries.empty()
                         ? with_prompt_logprobs(completion_logprobs({}, 0), prompt)
                         : Json();
  if (prompt.prompt_top) item["prompt_logprobs"] = vllm_prompt_logprobs(prompt);
  item["finish_reason"] = nullptr;
  out["choices"] = Json::array({std::move(item)});
  if (include_usage) out["usage"] = nullptr;
  return dump(out);
}

std::string usage_chunk_json(const ResponseMeta& meta, const Usage& usage) {
  Json out =
      head(meta, meta.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion");
  out["choices"] = Json::array();
  out["usage"] = usage_json(usage);
  return dump(out);
}

std::string models_json(const std::string& model, int64_t created, uint32_t max_model_len) {
  Json entry;
  entry["id"] = model;
  entry["object"] = "model";
  entry["created"] = created;
  entry["owned_by"] = "v4serve";
  entry["max_model_len"] = max_model_len;
  Json out;
  out["object"] = "list";
  out["data"] = Json::array({std::move(entry)});
  return dump(out);
}

std::string sse_event(const std::string& json) { return "data: " + json + "\n\n"; }

}  // namespace v4::router
