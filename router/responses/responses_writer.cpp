// Responses API bytes for a CompletionJob (one choice: the API has no `n`).
#include "router/responses/responses_writer.h"

#include "core/random_id.h"
#include "router/openai/openai_error.h"

namespace v4::router {
namespace {

using Json = RequestJson;

std::string dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Item ids ("rs_", "msg_", "fc_" + 32 hex digits); not secret, only unique.
std::string item_id(const char* prefix) { return random_id(prefix, 32, kHexDigits); }

Json reasoning_part(const std::string& text) {
  return {{"type", "reasoning_text"}, {"text", text}};
}

Json text_part(const std::string& text) {
  return {{"type", "output_text"},
          {"text", text},
          {"annotations", Json::array()},
          {"logprobs", Json::array()}};
}

Json reasoning_item(const std::string& id, const std::string& text, const std::string& status) {
  Json content = Json::array();
  if (status != "in_progress") content.push_back(reasoning_part(text));
  return {{"id", id},
          {"type", "reasoning"},
          {"summary", Json::array()},
          {"content", std::move(content)},
          {"status", status}};
}

Json message_item(const std::string& id, const std::string& text, const std::string& status) {
  Json content = Json::array();
  if (status != "in_progress") content.push_back(text_part(text));
  return {{"id", id},
          {"type", "message"},
          {"status", status},
          {"role", "assistant"},
          {"content", std::move(content)}};
}

Json call_item(const std::string& id, const std::string& call_id, const std::string& name,
               const std::string& arguments, const std::string& status) {
  return {{"id", id},           {"type", "function_call"},
          {"status", status},   {"arguments", arguments},
          {"call_id", call_id}, {"name", name}};
}

Json error_object(const ApiError& error) {
  return {{"code", "server_error"}, {"message", error.message}};
}

}  // namespace

std::string response_status(const ChoiceOutput& output) {
  return output.finish_reason() == "length" ? "incomplete" : "completed";
}

RequestJson usage_object(const Usage& usage) {
  return {{"input_tokens", usage.prompt_tokens},
          {"input_tokens_details", {{"cached_tokens", usage.cached_tokens}}},
          {"output_tokens", usage.completion_tokens},
          {"output_tokens_details", {{"reasoning_tokens", usage.reasoning_tokens}}},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

RequestJson response_object(const ResponsesMeta& meta, const std::string& status,
                            RequestJson output, RequestJson usage) {
  Json out;
  out["id"] = meta.id;
  out["object"] = "response";
  out["created_at"] = meta.created_at;
  out["status"] = status;
  out["background"] = false;
  out["error"] = nullptr;
  out["incomplete_details"] =
      status == "incomplete" ? Json{{"reason", "max_output_tokens"}} : Json();
  for (auto it = meta.echo.begin(); it != meta.echo.end(); ++it) out[it.key()] = it.value();
  out["output"] = std::move(output);
  out["usage"] = std::move(usage);
  return out;
}

ChatMessage assistant_message(const ChoiceOutput& output) {
  ChatMessage message;
  message.role = "assistant";
  message.content = output.content();
  if (!output.reasoning().empty()) message.reasoning = output.reasoning();
  for (const ChoiceToolCall& call : output.tool_calls())
    message.tool_calls.push_back(ChatToolCall{call.id, call.name, call.arguments, true});
  return message;
}

RequestJson output_items(const ChoiceOutput& output) {
  const std::string last = response_status(output);
  Json items = Json::array();
  if (!output.reasoning().empty())
    items.push_back(reasoning_item(item_id("rs_"), output.reasoning(), "completed"));
  if (!output.content().empty() || output.tool_calls().empty())
    items.push_back(message_item(item_id("msg_"), output.content(), "completed"));
  for (const ChoiceToolCall& call : output.tool_calls())
    items.push_back(call_item(item_id("fc_"), call.id, call.name, call.arguments, "completed"));
  // The item the length limit cut is the last one.
  if (last == "incomplete" && !items.empty()) items.back()["status"] = "incomplete";
  return items;
}

std::string typed_event(const RequestJson& event) {
  return "event: " + event["type"].get<std::string>() + "\ndata: " + dump(event) + "\n\n";
}

ResponsesWriter::ResponsesWriter(ResponsesMeta meta, bool stream,
                                 std::shared_ptr<ResponseStore> store)
    : meta_(std::move(meta)), stream_(stream), store_(std::move(store)) {}

void ResponsesWriter::send(HttpExchange& exchange, const std::string& type, RequestJson body) {
  Json event = {{"type", type}};
  for (auto it = body.begin(); it != body.end(); ++it) event[it.key()] = std::move(it.value());
  event["sequence_number"] = sequence_++;
  exchange.send_event(typed_event(event));
}

void ResponsesWriter::open(HttpExchange& exchange) {
  exchange.start_events();
  opened_ = true;
  const Json snapshot = response_object(meta_, "in_progress", Json::array(), nullptr);
  send(exchange, "response.created", {{"response", snapshot}});
  send(exchange, "response.in_progress", {{"response", snapshot}});
}

void ResponsesWriter::open_item(HttpExchange& exchange, Item item) {
  if (open_ == item) return;
  close_item(exchange, "completed");
  open_ = item;
  open_text_.clear();
  const Json index = items_.size();
  if (item == Item::kReasoning) {
    open_id_ = item_id("rs_");
    send(exchange, "response.output_item.added",
         {{"output_index", index}, {"item", reasoning_item(open_id_, "", "in_progress")}});
    send(exchange, "response.content_part.added",
         {{"item_id", open_id_},
          {"output_index", index},
          {"content_index", 0},
          {"part", reasoning_part("")}});
  } else {
    open_id_ = item_id("msg_");
    message_sent_ = true;
    send(exchange, "response.output_item.added",
         {{"output_index", index}, {"item", message_item(open_id_, "", "in_progress")}});
    send(exchange, "response.content_part.added",
         {{"item_id", open_id_},
          {"output_index", index},
          {"content_index", 0},
          {"part", text_part("")}});
  }
}

void ResponsesWriter::close_item(HttpExchange& exchange, const std::string& status) {
  if (open_ == Item::kNone) return;
  const Json index = items_.size();
  const bool reasoning = open_ == Item::kReasoning;
  const Json part = reasoning ? reasoning_part(open_text_) : text_part(open_text_);
  Json done = {{"item_id", open_id_}, {"output_index", index}, {"content_index", 0}};
  if (!reasoning) done["logprobs"] = Json::array();
  done["text"] = open_text_;
  send(exchange, reasoning ? "response.reasoning_text.done" : "response.output_text.done", done);
  send(exchange, "response.content_part.done",
       {{"item_id", open_id_}, {"output_index", index}, {"content_index", 0}, {"part", part}});
  Json item = reasoning ? reasoning_item(open_id_, open_text_, status)
                        : message_item(open_id_, open_text_, status);
  send(exchange, "response.output_item.done", {{"output_index", index}, {"item", item}});
  items_.push_back(std::move(item));
  open_ = Item::kNone;
}

void ResponsesWriter::add_call(HttpExchange& exchange, const ToolCallDelta& call) {
  close_item(exchange, "completed");
  call_sent_ = true;
  const Json index = items_.size();
  const std::string id = item_id("fc_");
  send(exchange, "response.output_item.added",
       {{"output_index", index}, {"item", call_item(id, call.id, call.name, "", "in_progress")}});
  send(exchange, "response.function_call_arguments.delta",
       {{"item_id", id}, {"output_index", index}, {"delta", call.arguments}});
  send(exchange, "response.function_call_arguments.done",
       {{"item_id", id},
        {"output_index", index},
        {"name", call.name},
        {"arguments", call.arguments}});
  Json item = call_item(id, call.id, call.name, call.arguments, "completed");
  send(exchange, "response.output_item.done", {{"output_index", index}, {"item", item}});
  items_.push_back(std::move(item));
}

void ResponsesWriter::delta(HttpExchange& exchange, uint32_t index, const ChoiceDelta& delta,
                            const ChoiceOutput& output) {
  (void)index, (void)output;
  auto text_delta = [&](const char* type, const std::string& text) {
    open_text_ += text;
    Json body = {{"item_id", open_id_},
                 {"output_index", items_.size()},
                 {"content_index", 0},
                 {"delta", text}};
    if (open_ == Item::kMessage) body["logprobs"] = Json::array();
    send(exchange, type, std::move(body));
  };
  if (!delta.reasoning.empty()) {
    open_item(exchange, Item::kReasoning);
    text_delta("response.reasoning_text.delta", delta.reasoning);
  }
  if (!delta.content.empty()) {
    open_item(exchange, Item::kMessage);
    text_delta("response.output_text.delta", delta.content);
  }
  for (const ToolCallDelta& call : delta.tool_calls) add_call(exchange, call);
}

// A finished response is kept with its conversation, for previous_response_id and GET.
void ResponsesWriter::keep(const ChoiceOutput& output, const RequestJson& response) {
  if (!meta_.store || !store_) return;
  StoredResponse stored;
  stored.response_json = dump(response);
  stored.conversation = std::move(meta_.conversation);
  stored.conversation.push_back(assistant_message(output));
  stored.tool_call_dsml = std::move(meta_.tool_call_dsml);
  for (const ChoiceToolCall& call : output.tool_calls())
    if (!call.dsml.empty()) stored.tool_call_dsml[call.id] = call.dsml;
  store_->put(meta_.id, std::move(stored));
}

void ResponsesWriter::complete(HttpExchange& exchange,
                               const std::vector<const ChoiceOutput*>& choices, const Usage& usage,
                               const std::vector<ChoicePrompt>& prompts) {
  (void)prompts;
  const ChoiceOutput& output = *choices.front();
  const std::string status = response_status(output);
  if (!stream_) {
    const Json response = response_object(meta_, status, output_items(output), usage_object(usage));
    // Kept before the client hears of it: its next request may name this response.
    keep(output, response);
    exchange.respond(200, "application/json", dump(response));
    return;
  }
  close_item(exchange, status);
  if (!message_sent_ && !call_sent_) {
    open_item(exchange, Item::kMessage);
    close_item(exchange, status);
  }
  const Json response = response_object(meta_, status, items_, usage_object(usage));
  keep(output, response);
  send(exchange, status == "completed" ? "response.completed" : "response.incomplete",
       {{"response", response}});
  exchange.end_events();
}

// Before a stream starts: an OpenAI error body. After: response.failed, whose response
// carries the error, ends the stream.
void ResponsesWriter::send_error(HttpExchange& exchange, const ApiError& error) {
  if (!opened_) {
    exchange.respond(error.status, "application/json", api_error_json(error));
    return;
  }
  close_item(exchange, "incomplete");
  Json response = response_object(meta_, "failed", items_, nullptr);
  response["error"] = error_object(error);
  send(exchange, "response.failed", {{"response", std::move(response)}});
  exchange.end_events();
}

void ResponsesWriter::fail(HttpExchange& exchange, const ApiError& error) {
  send_error(exchange, error);
}

int ResponsesWriter::shutdown(HttpExchange& exchange,
                              const std::vector<const ChoiceOutput*>& choices, const Usage& usage) {
  (void)choices, (void)usage;
  const ApiError error = server_error("the server shut down before this response finished", 503);
  send_error(exchange, error);
  return opened_ ? 200 : error.status;
}

}  // namespace v4::router
