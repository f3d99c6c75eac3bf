// OpenAI response bytes for a CompletionJob: whole bodies, or SSE chunks and [DONE].
#include "router/openai/openai_writer.h"

namespace v4::router {

OpenAiWriter::OpenAiWriter(ResponseMeta meta, bool stream, bool include_usage, size_t choices)
    : meta_(std::move(meta)),
      stream_(stream),
      include_usage_(include_usage),
      finish_sent_(choices, false) {}

void OpenAiWriter::open(HttpExchange& exchange) {
  exchange.start_events();
  opened_ = true;
  if (meta_.endpoint != Endpoint::kChat) return;
  for (uint32_t i = 0; i < finish_sent_.size(); ++i)
    exchange.send_event(sse_event(chunk_json(meta_, i, ChoiceDelta{}, true, "", include_usage_)));
}

void OpenAiWriter::prompt(HttpExchange& exchange, uint32_t index, const ChoicePrompt& prompt) {
  if (!stream_ || (prompt.echo.empty() && !prompt.wants_scores())) return;
  exchange.send_event(sse_event(prompt_chunk_json(meta_, index, prompt, include_usage_)));
}

void OpenAiWriter::delta(HttpExchange& exchange, uint32_t index, const ChoiceDelta& delta,
                         const ChoiceOutput& output) {
  if (!delta.empty())
    exchange.send_event(sse_event(chunk_json(meta_, index, delta, false, "", include_usage_)));
  // A choice that failed gets no finish chunk: the job ends the stream with an error event.
  if (output.done() && !finish_sent_[index] && output.finish_reason() != "error") {
    finish_sent_[index] = true;
    exchange.send_event(sse_event(
        chunk_json(meta_, index, ChoiceDelta{}, false, output.finish_reason(), include_usage_)));
  }
}

void OpenAiWriter::complete(HttpExchange& exchange, const std::vector<const ChoiceOutput*>& choices,
                            const Usage& usage, const std::vector<ChoicePrompt>& prompts) {
  if (!stream_) {
    exchange.respond(200, "application/json", response_json(meta_, choices, usage, prompts));
    return;
  }
  if (include_usage_) exchange.send_event(sse_event(usage_chunk_json(meta_, usage)));
  exchange.send_event(kSseDone);
  exchange.end_events();
}

// A started stream ends with the error as an event and [DONE], as vLLM does.
void OpenAiWriter::fail(HttpExchange& exchange, const ApiError& error) {
  const std::string body = api_error_json(error);
  if (opened_) {
    exchange.send_event(sse_event(body));
    exchange.send_event(kSseDone);
    exchange.end_events();
  } else {
    exchange.respond(error.status, "application/json", body);
  }
}

// A stream gets a final chunk with finish_reason "abort" for every unfinished choice, the usage
// chunk when asked for, and [DONE]; a whole response gets a 503 error body.
int OpenAiWriter::shutdown(HttpExchange& exchange, const std::vector<const ChoiceOutput*>& choices,
                           const Usage& usage) {
  if (!opened_) {
    const ApiError error = server_error("the server shut down before this request finished", 503);
    exchange.respond(error.status, "application/json", api_error_json(error));
    return error.status;
  }
  for (uint32_t i = 0; i < choices.size() && i < finish_sent_.size(); ++i) {
    if (finish_sent_[i]) continue;
    finish_sent_[i] = true;
    exchange.send_event(
        sse_event(chunk_json(meta_, i, ChoiceDelta{}, false, "abort", include_usage_)));
  }
  if (include_usage_) exchange.send_event(sse_event(usage_chunk_json(meta_, usage)));
  exchange.send_event(kSseDone);
  exchange.end_events();
  return 200;
}

}  // namespace v4::router
