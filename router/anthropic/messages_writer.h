// ResponseWriter for Anthropic's Messages API: a whole "message" object, or the event stream
// message_start, ping, then per content block content_block_start / content_block_delta
// (thinking_delta and signature_delta, text_delta, input_json_delta) / content_block_stop, then
// message_delta (stop_reason, stop_sequence, usage) and message_stop. Content blocks come in
// the model's order: thinking (its reasoning), text, then one tool_use block per call.
//
// V4 signs nothing: a thinking block's `signature` is a digest of its text, there because
// clients keep and send back the field; it is not checked when they do.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "router/openai/response_writer.h"

namespace v4::router {

struct MessageMeta {
  std::string id;  // "msg_…"
  std::string model;
  uint32_t input_tokens = 0;
};

// Anthropic's stop_reason for a finished output: end_turn, max_tokens, stop_sequence or
// tool_use ("end_turn" also for a cancelled output).
std::string anthropic_stop_reason(const ChoiceOutput& output);
// The `signature` of a thinking block with this text.
std::string thinking_signature(std::string_view thinking);
// The whole response body.
std::string message_json(const MessageMeta& meta, const ChoiceOutput& output,
                         uint32_t output_tokens);
// "event: NAME\ndata: JSON\n\n".
std::string named_event(std::string_view name, const std::string& json);

class MessagesWriter : public ResponseWriter {
 public:
  MessagesWriter(MessageMeta meta, bool stream);

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
  enum class Block { kNone, kThinking, kText };
  void ensure_block(HttpExchange& exchange, Block block);
  void close_block(HttpExchange& exchange);
  void send_error(HttpExchange& exchange, const ApiError& error);

  MessageMeta meta_;
  bool stream_;
  bool opened_ = false;
  Block open_ = Block::kNone;
  int next_index_ = 0;    // the index the next content block gets
  std::string thinking_;  // text of the open thinking block (its signature)
};

}  // namespace v4::router
