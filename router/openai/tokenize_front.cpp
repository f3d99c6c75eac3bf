// POST /tokenize and /detokenize (tokenize_front.h).
#include "router/openai/tokenize_front.h"

#include <cstdint>
#include <stdexcept>

#include "model/text/detokenizer.h"
#include "router/openai/request_json.h"

namespace v4::router {
namespace {

constexpr std::string_view kTokenizePath = "/tokenize";
constexpr std::string_view kDetokenizePath = "/detokenize";

// vLLM's switches that ask for something else than what generation sees; only their default
// (true) is served, so a client relying on the other value gets an error, not other tokens.
std::optional<ApiError> take_default_only(RequestJson& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end()) return std::nullopt;
  if (!it->is_boolean()) return invalid_request(std::string(name) + ": must be a boolean", name);
  if (!it->get<bool>()) {
    return invalid_request(
        std::string(name) + ": only true is supported (the tokens are those generation sees)",
        name);
  }
  body.erase(it);
  return std::nullopt;
}

std::optional<ApiError> read_object(std::string_view body, size_t max_array_items,
                                    RequestJson& out) {
  JsonLimits limits;
  limits.max_array_items = max_array_items;
  if (std::optional<ApiError> e = parse_request_json(body, limits, {}, out)) return e;
  if (!out.is_object()) return invalid_request("the request body must be a JSON object");
  return std::nullopt;
}

ApiError bad_id(const Tokenizer& tokenizer) {
  return invalid_request("tokens: every item must be a token id in [0, " +
                             std::to_string(tokenizer.vocab_size()) + ")",
                         "tokens");
}

}  // namespace

TokenizeFront::TokenizeFront(std::string model_name, const Tokenizer& tokenizer)
    : model_name_(std::move(model_name)), tokenizer_(tokenizer) {}

std::optional<RouteKind> TokenizeFront::route(std::string_view path) const {
  if (path == kTokenizePath) return RouteKind::kPromptTokens;
  if (path == kDetokenizePath) return RouteKind::kDirect;
  return std::nullopt;
}

bool TokenizeFront::owns(std::string_view path) const {
  return path == kTokenizePath || path == kDetokenizePath;
}

ErrorReply TokenizeFront::error_reply(const ApiError& error) const {
  return {error.status, api_error_json(error)};
}

// The body is read as the generation endpoint it names would read it, after the few fields of
// /tokenize's own are taken out.
std::optional<ApiError> TokenizeFront::parse(std::string_view path, std::string_view body,
                                             size_t vocab_size, OpenAiRequest& out) const {
  (void)path;
  RequestJson json;
  if (std::optional<ApiError> e = read_object(body, JsonLimits{}.max_array_items, json)) return e;
  if (std::optional<ApiError> e = take_default_only(json, "add_special_tokens")) return e;
  if (std::optional<ApiError> e = take_default_only(json, "add_generation_prompt")) return e;
  if (!json.contains("model")) json["model"] = model_name_;
  const bool chat = json.contains("messages");
  if (chat == json.contains("prompt")) {
    return invalid_request("give either 'messages' (a chat) or 'prompt' (a completion prompt)");
  }
  if (!chat) {
    const RequestJson& prompt = json["prompt"];
    const bool ids = prompt.is_array() && !prompt.empty() && prompt.front().is_number_integer();
    if (!prompt.is_string() && !ids) {
      return invalid_request("prompt: must be one string or one list of token ids", "prompt");
    }
  }
  return parse_openai_request(chat ? Endpoint::kChat : Endpoint::kCompletions, json.dump(),
                              vocab_size, out);
}

std::string TokenizeFront::prompt_reply(const PreparedRequest& prepared,
                                        uint32_t max_context) const {
  const std::vector<int32_t>& ids = prepared.prompts.front().ids;
  nlohmann::json reply;
  reply["count"] = ids.size();
  reply["max_model_len"] = max_context;
  reply["tokens"] = ids;
  return reply.dump();
}

std::optional<ApiError> TokenizeFront::direct_reply(std::string_view path, std::string_view body,
                                                    std::string& reply) const {
  (void)path;
  RequestJson json;
  if (std::optional<ApiError> e = read_object(body, JsonLimits{}.max_array_items, json)) return e;
  for (const auto& [key, value] : json.items()) {
    if (key != "model" && key != "tokens") {
      return invalid_request("unknown field '" + key + "' (expected model, tokens)", key);
    }
  }
  if (auto model = json.find("model"); model != json.end() && *model != model_name_) {
    return not_found(
        "The model `" + (model->is_string() ? model->get<std::string>() : "") + "` does not exist.",
        "model_not_found");
  }
  auto tokens = json.find("tokens");
  if (tokens == json.end() || !tokens->is_array()) {
    return invalid_request("tokens: required, a list of token ids", "tokens");
  }
  std::vector<TokenId> ids;
  ids.reserve(tokens->size());
  for (const RequestJson& token : *tokens) {
    const int64_t id = token.is_number_integer() ? token.get<int64_t>() : -1;
    if (token.is_number_unsigned() && token.get<uint64_t>() > INT32_MAX) return bad_id(tokenizer_);
    if (id < 0 || id > INT32_MAX || !tokenizer_.is_valid(static_cast<TokenId>(id))) {
      return bad_id(tokenizer_);
    }
    ids.push_back(static_cast<TokenId>(id));
  }
  nlohmann::json answer;
  answer["prompt"] = utf8_replace_invalid(tokenizer_.decode(ids));
  reply = answer.dump();
  return std::nullopt;
}

JobSetup TokenizeFront::job_setup(std::string_view path, const OpenAiRequest& request,
                                  const PreparedRequest& prepared,
                                  const JobEnvironment& env) const {
  (void)request, (void)prepared, (void)env;
  throw std::logic_error("no generation job on " + std::string(path));
}

}  // namespace v4::router
