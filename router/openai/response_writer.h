// How one generation job's response is written in one API's shapes (OpenAI's chat completions
// and completions here, Anthropic's Messages in router/anthropic). CompletionJob decides when
// something is written — engine events, the end, a failure, a shutdown — and the writer decides
// the bytes. The job calls a writer under its own lock, one call at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "router/http/http_server.h"
#include "router/openai/choice_output.h"
#include "router/openai/choice_prompt.h"
#include "router/openai/openai_error.h"
#include "router/openai/openai_response.h"

namespace v4::router {

class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;

  // Whether the response is an event stream (the job then feeds delta()).
  virtual bool streams() const = 0;
  // Stream: starts the event stream and writes what precedes any engine event.
  virtual void open(HttpExchange& exchange) = 0;
  // A choice's prompt report (completions' echo and prompt scores), after its first event.
  virtual void prompt(HttpExchange& exchange, uint32_t index, const ChoicePrompt& prompt) {
    (void)exchange, (void)index, (void)prompt;
  }
  // Stream: what choice `index` released; `output` is the choice itself (done() once it ended).
  virtual void delta(HttpExchange& exchange, uint32_t index, const ChoiceDelta& delta,
                     const ChoiceOutput& output) = 0;
  // Every choice ended without error: the whole response, or the stream's last events.
  virtual void complete(HttpExchange& exchange, const std::vector<const ChoiceOutput*>& choices,
                        const Usage& usage, const std::vector<ChoicePrompt>& prompts) = 0;
  // The request failed: an error body with error.status, or, once a stream has started, an
  // error event that ends it.
  virtual void fail(HttpExchange& exchange, const ApiError& error) = 0;
  // The server shuts down before every choice ended: ends the response now. Returns the HTTP
  // status the metrics count.
  virtual int shutdown(HttpExchange& exchange, const std::vector<const ChoiceOutput*>& choices,
                       const Usage& usage) = 0;
};

}  // namespace v4::router
