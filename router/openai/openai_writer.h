// ResponseWriter for OpenAI's shapes: chat.completion / text_completion bodies, and streams of
// chat.completion.chunk / text_completion chunks ending with [DONE] (openai_response.h).
#pragma once

#include <cstdint>
#include <vector>

#include "router/openai/response_writer.h"

namespace v4::router {

class OpenAiWriter : public ResponseWriter {
 public:
  // `choices`: how many choices the job runs (a chat stream announces each one's role first).
  OpenAiWriter(ResponseMeta meta, bool stream, bool include_usage, size_t choices);

  bool streams() const override { return stream_; }
  void open(HttpExchange& exchange) override;
  void prompt(HttpExchange& exchange, uint32_t index, const ChoicePrompt& prompt) override;
  void delta(HttpExchange& exchange, uint32_t index, const ChoiceDelta& delta,
             const ChoiceOutput& output) override;
  void complete(HttpExchange& exchange, const std::vector<const ChoiceOutput*>& choices,
                const Usage& usage, const std::vector<ChoicePrompt>& prompts) override;
  void fail(HttpExchange& exchange, const ApiError& error) override;
  int shutdown(HttpExchange& exchange, const std::vector<const ChoiceOutput*>& choices,
               const Usage& usage) override;

 private:
  ResponseMeta meta_;
  bool stream_;
  bool include_usage_;
  bool opened_ = false;
  std::vector<bool> finish_sent_;  // per choice: its finish_reason chunk went out
};

}  // namespace v4::router
