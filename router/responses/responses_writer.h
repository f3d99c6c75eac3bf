// ResponseWriter for OpenAI's Responses API: a whole "response" object, or its event stream —
// response.created, response.in_progress, then per output item response.output_item.added,
// its parts and deltas (response.content_part.added, response.reasoning_text.delta / .done or
// response.output_text.delta / .done, response.content_part.done; for a call
// response.function_call_arguments.delta / .done), response.output_item.done, and last
// response.completed (response.incomplete when max_output_tokens cut the output,
// response.failed on an error). Every event carries its sequence_number.
//
// Output items come in the model's order: a reasoning item (its text as reasoning_text
// content), a message with one output_text part, then one function_call item per call. A
// response without calls always has a message, if empty. A call arrives whole
// (choice_output.h), so its arguments go out in one delta. Once the response ends it is kept
// in the ResponseStore when the request asked for that (`store`, on by default).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/chat/chat_request.h"
#include "router/openai/request_json.h"
#include "router/openai/response_writer.h"
#include "router/responses/response_store.h"

namespace v4::router {

struct ResponsesMeta {
  std::string id;  // "resp_…"
  int64_t created_at = 0;
  RequestJson echo = RequestJson::object();  // ResponsesState::echo
  bool store = false;
  // What a stored response keeps besides its output (ResponsesState::conversation and the
  // request's DSML replay map).
  std::vector<ChatMessage> conversation;
  std::map<std::string, std::string> tool_call_dsml;
};

// "completed", or "incomplete" when the length limit cut the output.
std::string response_status(const ChoiceOutput& output);
// The response object; `usage` null while in progress.
RequestJson response_object(const ResponsesMeta& meta, const std::string& status,
                            RequestJson output, RequestJson usage);
RequestJson usage_object(const Usage& usage);
// The output as the assistant message a continuation renders.
ChatMessage assistant_message(const ChoiceOutput& output);
// The output items of a whole (non-streamed) response, with fresh item ids.
RequestJson output_items(const ChoiceOutput& output);
// "event: TYPE\ndata: JSON\n\n" for an event whose data holds its "type".
std::string typed_event(const RequestJson& event);

class ResponsesWriter : public ResponseWriter {
 public:
  // `store` may be null when meta.store is false.
  ResponsesWriter(ResponsesMeta meta, bool stream, std::shared_ptr<ResponseStore> store);

  bool streams() const override { return stream_; }
  void open(HttpExchange& exchange) override;
  void delta(HttpExchange& exchange, uint32_t index, const ChoiceDelta& delta,
             const ChoiceOutput& output) override;
  void complete(HttpExchange& exchange, const std::vector<const ChoiceOutput*>& choices,
                const Usage& usage, const std::vector<ChoicePrompt>& prompts) override;
  void fail(HttpExchange& exchange, const ApiError& error) override;
  int shutdown(HttpExchange& exchange, const std::vector<const ChoiceOutput*>& choices,
               const Usage& usage) override;

 private:
  enum class Item { kNone, kReasoning, kMessage };
  void send(HttpExchange& exchange, const std::string& type, RequestJson body);
  void open_item(HttpExchange& exchange, Item item);
  void close_item(HttpExchange& exchange, const std::string& status);
  void add_call(HttpExchange& exchange, const ToolCallDelta& call);
  void keep(const ChoiceOutput& output, const RequestJson& response);
  void send_error(HttpExchange& exchange, const ApiError& error);

  ResponsesMeta meta_;
  bool stream_;
  std::shared_ptr<ResponseStore> store_;
  bool opened_ = false;
  int64_t sequence_ = 0;
  RequestJson items_ = RequestJson::array();  // the items done so far, as sent
  Item open_ = Item::kNone;
  std::string open_id_, open_text_;
  bool message_sent_ = false, call_sent_ = false;
};

}  // namespace v4::router
