// Anthropic Messages response bytes for a CompletionJob (one choice: the API has no `n`).
#include "router/anthropic/messages_writer.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "router/anthropic/anthropic_error.h"

namespace v4::router {
namespace {

using Json = nlohmann::ordered_json;

std::string dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// A call's arguments as the `input` object. The DSML parser writes them as a JSON object; a
// text that is not one (never expected) travels whole under "arguments" rather than lost.
Json tool_input(const std::string& arguments) {
  Json input = Json::parse(arguments, nullptr, /*allow_exceptions=*/false);
  if (input.is_discarded() || !input.is_object()) return Json{{"arguments", arguments}};
  return input;
}

Json tool_use_block(const std::string& id, const std::string& name, Json input) {
  Json block;
  block["type"] = "tool_use";
  block["id"] = id;
  block["name"] = name;
  block["input"] = std::move(input);
  return block;
}

Json stop_sequence_json(const ChoiceOutput& output) {
  return anthropic_stop_reason(output) == "stop_sequence" ? Json(output.stop_string()) : Json();
}

Json usage_json(uint32_t input_tokens, uint32_t output_tokens) {
  return Json{{"input_tokens", input_tokens}, {"output_tokens", output_tokens}};
}

}  // namespace

std::string anthropic_stop_reason(const ChoiceOutput& output) {
  const std::string& reason = output.finish_reason();
  if (reason == "length") return "max_tokens";
  if (reason == "tool_calls") return "tool_use";
  if (reason == "stop" && !output.stop_string().empty()) return "stop_sequence";
  return "end_turn";
}

// FNV-1a over the text: stable, cheap, and not pretending to be a cryptographic signature.
std::string thinking_signature(std::string_view thinking) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : thinking) hash = (hash ^ c) * 1099511628211ull;
  char text[32];
  std::snprintf(text, sizeof text, "v4serve-fnv1a-%016llx", static_cast<unsigned long long>(hash));
  return text;
}

std::string message_json(const MessageMeta& meta, const ChoiceOutput& output,
                         uint32_t output_tokens) {
  Json content = Json::array();
  if (!output.reasoning().empty()) {
    content.push_back(Json{{"type", "thinking"},
                           {"thinking", output.reasoning()},
                           {"signature", thinking_signature(output.reasoning())}});
  }
  if (!output.content().empty())
    content.push_back(Json{{"type", "text"}, {"text", output.content()}});
  for (const ChoiceToolCall& call : output.tool_calls())
    content.push_back(tool_use_block(call.id, call.name, tool_input(call.arguments)));
  Json out;
  out["id"] = meta.id;
  out["type"] = "message";
  out["role"] = "assistant";
  out["model"] = meta.model;
  out["content"] = std::move(content);
  out["stop_reason"] = anthropic_stop_reason(output);
  out["stop_sequence"] = stop_sequence_json(output);
  out["usage"] = usage_json(meta.input_tokens, output_tokens);
  return dump(out);
}

std::string named_event(std::string_view name, const std::string& json) {
  std::string out = "event: ";
  out.append(name).append("\ndata: ").append(json).append("\n\n");
  return out;
}

MessagesWriter::MessagesWriter(MessageMeta meta, bool stream)
    : meta_(std::move(meta)), stream_(stream) {}

void MessagesWriter::open(HttpExchange& exchange) {
  exchange.start_events();
  opened_ = true;
  Json message;
  message["id"] = meta_.id;
  message["type"] = "message";
  message["role"] = "assistant";
  message["model"] = meta_.model;
  message["content"] = Json::array();
  message["stop_reason"] = nullptr;
  message["stop_sequence"] = nullptr;
  message["usage"] = usage_json(meta_.input_tokens, 0);
  exchange.send_event(
      named_event("message_start", dump(Json{{"type", "message_start"}, {"message", message}})));
  exchange.send_event(named_event("ping", R"({"type":"ping"})"));
}

void MessagesWriter::ensure_block(HttpExchange& exchange, Block block) {
  if (open_ == block) return;
  close_block(exchange);
  Json start = block == Block::kThinking
                   ? Json{{"type", "thinking"}, {"thinking", ""}, {"signature", ""}}
                   : Json{{"type", "text"}, {"text", ""}};
  exchange.send_event(named_event("content_block_start", dump(Json{{"type", "content_block_start"},
                                                                   {"index", next_index_},
                                                                   {"content_block", start}})));
  open_ = block;
}

// A thinking block's signature goes out as its last delta, as Anthropic sends it.
void MessagesWriter::close_block(HttpExchange& exchange) {
  if (open_ == Block::kNone) return;
  if (open_ == Block::kThinking) {
    const Json delta = {{"type", "signature_delta"}, {"signature", thinking_signature(thinking_)}};
    exchange.send_event(named_event(
        "content_block_delta",
        dump(Json{{"type", "content_block_delta"}, {"index", next_index_}, {"delta", delta}})));
    thinking_.clear();
  }
  exchange.send_event(named_event(
      "content_block_stop", dump(Json{{"type", "content_block_stop"}, {"index", next_index_}})));
  ++next_index_;
  open_ = Block::kNone;
}

void MessagesWriter::delta(HttpExchange& exchange, uint32_t index, const ChoiceDelta& delta,
                           const ChoiceOutput& output) {
  (void)index, (void)output;
  auto send_delta = [&](const Json& body) {
    exchange.send_event(named_event(
        "content_block_delta",
        dump(Json{{"type", "content_block_delta"}, {"index", next_index_}, {"delta", body}})));
  };
  if (!delta.reasoning.empty()) {
    ensure_block(exchange, Block::kThinking);
    thinking_ += delta.reasoning;
    send_delta(Json{{"type", "thinking_delta"}, {"thinking", delta.reasoning}});
  }
  if (!delta.content.empty()) {
    ensure_block(exchange, Block::kText);
    send_delta(Json{{"type", "text_delta"}, {"text", delta.content}});
  }
  // A call arrives whole (choice_output.h): its block opens, carries the input, and closes.
  for (const ToolCallDelta& call : delta.tool_calls) {
    close_block(exchange);
    exchange.send_event(named_event(
        "content_block_start",
        dump(Json{{"type", "content_block_start"},
                  {"index", next_index_},
                  {"content_block", tool_use_block(call.id, call.name, Json::object())}})));
    send_delta(Json{{"type", "input_json_delta"}, {"partial_json", call.arguments}});
    exchange.send_event(named_event(
        "content_block_stop", dump(Json{{"type", "content_block_stop"}, {"index", next_index_}})));
    ++next_index_;
  }
}

void MessagesWriter::complete(HttpExchange& exchange,
                              const std::vector<const ChoiceOutput*>& choices, const Usage& usage,
                              const std::vector<ChoicePrompt>& prompts) {
  (void)prompts;
  const ChoiceOutput& output = *choices.front();
  if (!stream_) {
    exchange.respond(200, "application/json", message_json(meta_, output, usage.completion_tokens));
    return;
  }
  close_block(exchange);
  Json delta = {{"stop_reason", anthropic_stop_reason(output)},
                {"stop_sequence", stop_sequence_json(output)}};
  exchange.send_event(
      named_event("message_delta",
                  dump(Json{{"type", "message_delta"},
                            {"delta", std::move(delta)},
                            {"usage", usage_json(meta_.input_tokens, usage.completion_tokens)}})));
  exchange.send_event(named_event("message_stop", R"({"type":"message_stop"})"));
  exchange.end_events();
}

// A started stream ends with an `error` event, as Anthropic's streams do.
void MessagesWriter::send_error(HttpExchange& exchange, const ApiError& error) {
  const ErrorReply reply = anthropic_error_reply(error);
  if (!opened_) {
    exchange.respond(reply.status, "application/json", reply.body);
    return;
  }
  exchange.send_event(named_event("error", reply.body));
  exchange.end_events();
}

void MessagesWriter::fail(HttpExchange& exchange, const ApiError& error) {
  send_error(exchange, error);
}

int MessagesWriter::shutdown(HttpExchange& exchange,
                             const std::vector<const ChoiceOutput*>& choices, const Usage& usage) {
  (void)choices, (void)usage;
  const ApiError error = server_error("the server shut down before this request finished", 503);
  send_error(exchange, error);
  return opened_ ? 200 : anthropic_error_reply(error).status;
}

}  // namespace v4::router
