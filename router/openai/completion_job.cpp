#include "router/openai/completion_job.h"

#include <spdlog/spdlog.h>

#include <random>

namespace v4::router {

namespace {

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

uint64_t random_seed() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

}  // namespace

CompletionJob::CompletionJob(JobEnvironment& env, std::shared_ptr<HttpExchange> exchange)
    : env_(env), exchange_(std::move(exchange)) {}

std::shared_ptr<CompletionJob> CompletionJob::start(JobEnvironment& env,
                                                    const OpenAiRequest& request,
                                                    PreparedRequest prepared, JobSetup setup,
                                                    std::shared_ptr<HttpExchange> exchange,
                                                    Clock::time_point arrival, double setup_seconds,
                                                    std::function<void()> on_end) {
  auto job = std::make_shared<CompletionJob>(env, exchange);
  job->writer_ = std::move(setup.writer);
  job->arrival_ = arrival;
  job->router_seconds_ = setup_seconds;
  job->max_tokens_ = prepared.sampling.max_tokens;
  job->on_end_ = std::move(on_end);
  job->handler_ = std::move(setup.handler);
  ChoiceOutputOptions options;
  options.chat = prepared.chat;
  options.thinking = prepared.thinking;
  options.parse_tools = prepared.parse_tools;
  options.stop = prepared.stop;
  options.logprobs = prepared.sampling.logprobs;
  options.top_logprobs = prepared.sampling.top_logprobs;
  options.forced_output = prepared.forced_output;
  options.single_tool_call = prepared.parse_tools && !request.parallel_tool_calls;
  options.require_tool_call =
      request.tool_choice == ToolChoice::kRequired || request.tool_choice == ToolChoice::kNamed;
  const bool several = prepared.prompts.size() * request.n > 1;
  for (size_t p = 0; p < prepared.prompts.size(); ++p) {
    job->prompt_tokens_.push_back(static_cast<uint32_t>(prepared.prompts[p].ids.size()));
    for (uint32_t k = 0; k < request.n; ++k) {
      options.tool_call_id_prefix = setup.tool_call_id_prefix;
      if (several) options.tool_call_id_prefix += std::to_string(job->choices_.size()) + "_";
      Result<ChoiceOutput> output = ChoiceOutput::create(env.tokenizer, options);
      if (!output) {
        job->writer_->fail(*exchange, server_error(output.message()));
        env.metrics.http_request(job->handler_, 500);
        if (job->on_end_) job->on_end_();
        return job;
      }
      Choice c;
      c.output.emplace(std::move(*output));
      c.prompt = p;
      job->choices_.push_back(std::move(c));
      ChoicePrompt prompt;
      if (request.echo) prompt.echo = prepared.prompts[p].echo_text;
      if (request.endpoint == Endpoint::kCompletions && request.echo &&
          request.completion_logprobs) {
        prompt.echo_top = request.completion_logprobs;
      }
      prompt.prompt_top = request.prompt_logprobs;
      job->choice_prompts_.push_back(std::move(prompt));
    }
  }
  bool ended = false;
  {
    std::lock_guard<std::mutex> lock(job->mutex_);
    if (job->writer_->streams()) job->writer_->open(*exchange);
    env.waiting.fetch_add(1);
    job->counted_waiting_ = true;
    if (Status s = job->submit_all(prepared, request.seed); !s) {
      job->reject(s.message());
      ended = true;
    }
    if (prepared.sampling.prompt_logprobs) job->prompts_ = std::move(prepared.prompts);
  }
  if (ended) {
    if (job->on_end_) job->on_end_();
    return job;
  }
  std::weak_ptr<CompletionJob> weak = job;
  exchange->on_disconnect([weak] {
    if (std::shared_ptr<CompletionJob> j = weak.lock()) j->on_disconnect();
  });
  return job;
}

// The engine refused a choice (it can never run, e.g. more KV pages than exist): a client
// error when nothing has been streamed yet.
void CompletionJob::reject(const std::string& message) {
  bool any = false;
  for (const Choice& c : choices_) any = any || c.submitted;
  if (writer_->streams() || any) {
    fail(message);
    return;
  }
  writer_->fail(*exchange_, invalid_request(message));
  end(400, "error");
}

// Choice k of a prompt samples with seed + k, so n > 1 gives different choices that are each
// reproducible; without a seed every choice draws a fresh one.
Status CompletionJob::submit_all(const PreparedRequest& prepared, std::optional<uint64_t> seed) {
  std::vector<uint32_t> per_prompt(prepared.prompts.size(), 0);
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    EngineRequest r;
    r.prompt = prepared.prompts[c.prompt].ids;
    r.sampling = prepared.sampling;
    r.sampling.seed = seed ? *seed + per_prompt[c.prompt] : random_seed();
    ++per_prompt[c.prompt];
    std::shared_ptr<CompletionJob> self = shared_from_this();
    Result<EngineRequestId> id =
        env_.engine.submit(std::move(r), [self, i](EngineEvent e) { self->on_event(i, e); });
    if (!id) return id.status();
    c.engine_id = *id;
    c.submitted = true;
  }
  return Status::ok();
}

void CompletionJob::on_event(size_t index, EngineEvent event) {
  bool ended_now = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Choice& c = choices_[index];
    if (c.final_event) return;
    const Clock::time_point now = Clock::now();
    const ThreadCpuClock::time_point cpu_start = ThreadCpuClock::now();
    if (event.finish != EngineFinish::kNone) c.final_event = true;
    if (!c.first_event) {
      c.first_event = true;
      queue_seconds_ = std::max(queue_seconds_, event.queue_seconds);
      bool all = true;
      for (const Choice& other : choices_) all = all && other.first_event;
      if (all && counted_waiting_) {
        env_.waiting.fetch_sub(1);
        counted_waiting_ = false;
      }
    }
    if (ended_) return;
    if (!c.prompt_reported && !report_prompt(index, event)) return;
    if (event.token >= 0) {
      if (!first_token_seen_) {
        first_token_seen_ = true;
        first_token_ = now;
        env_.metrics.time_to_first_token(seconds_between(arrival_, now));
      } else if (c.last_token != Clock::time_point{}) {
        env_.metrics.inter_token_latency(seconds_between(c.last_token, now));
      }
      c.last_token = now;
    }
    if (!c.output->done()) {
      const ChoiceDelta delta = c.output->push(event);
      record_tool_calls(*c.output, delta);
      if (c.output->done()) report_warnings(index, *c.output);
      if (c.output->stopped() && !c.final_event) env_.engine.cancel(c.engine_id);
      if (writer_->streams())
        writer_->delta(*exchange_, static_cast<uint32_t>(index), delta, *c.output);
    }
    finish_if_done();
    router_seconds_ += std::chrono::duration<double>(ThreadCpuClock::now() - cpu_start).count();
    ended_now = ended_;
  }
  if (ended_now && on_end_) {
    std::function<void()> on_end = std::move(on_end_);
    on_end_ = nullptr;
    on_end();
  }
}

void CompletionJob::record_tool_calls(const ChoiceOutput& output, const ChoiceDelta& delta) {
  if (env_.tool_call_replay == nullptr) return;
  for (const ToolCallDelta& released : delta.tool_calls) {
    const ChoiceToolCall& call = output.tool_calls().at(static_cast<size_t>(released.index));
    env_.tool_call_replay->put(call.id, call.name, call.arguments, call.dsml);
  }
}

void CompletionJob::report_warnings(size_t index, const ChoiceOutput& output) {
  for (const std::string& warning : output.warnings()) {
    spdlog::warn("{} choice {}: {}; returned as content", handler_, index, warning);
  }
  if (!output.warnings().empty()) env_.metrics.malformed_output();
}

// A choice's first event carries its prompt's scores; a stream sends the echo and the scores
// in the choice's first chunk. False when the job failed.
bool CompletionJob::report_prompt(size_t index, const EngineEvent& event) {
  Choice& c = choices_[index];
  c.prompt_reported = true;
  ChoicePrompt& prompt = choice_prompts_[index];
  if (prompt.wants_scores() && event.token >= 0) {
    const PreparedPrompt& p = prompts_[c.prompt];
    if (!score_choice_prompt(env_.tokenizer, p.ids, p.echo_start, event.prompt_logprobs, prompt)) {
      fail("the engine's prompt logprobs do not match the prompt");
      return false;
    }
  }
  writer_->prompt(*exchange_, static_cast<uint32_t>(index), prompt);
  return true;
}

Usage CompletionJob::usage() const {
  Usage u;
  std::vector<uint32_t> cached(prompt_tokens_.size(), 0);
  for (const Choice& c : choices_) {
    u.completion_tokens += c.output->completion_tokens();
    u.reasoning_tokens += c.output->reasoning_tokens();
    cached[c.prompt] = std::max(cached[c.prompt], c.output->cached_tokens());
  }
  for (size_t p = 0; p < prompt_tokens_.size(); ++p) {
    u.prompt_tokens += prompt_tokens_[p];
    u.cached_tokens += cached[p];
  }
  return u;
}

std::vector<const ChoiceOutput*> CompletionJob::outputs() const {
  std::vector<const ChoiceOutput*> list;
  for (const Choice& c : choices_) list.push_back(&*c.output);
  return list;
}

void CompletionJob::finish_if_done() {
  if (ended_) return;
  std::string error;
  for (const Choice& c : choices_) {
    if (!c.output->done()) return;
    if (c.output->finish_reason() == "error" && error.empty()) {
      error = c.output->error().empty() ? "the engine failed while generating this request"
                                        : c.output->error();
    }
  }
  if (!error.empty()) {
    fail(error);
    return;
  }
  writer_->complete(*exchange_, outputs(), usage(), choice_prompts_);
  end(200, choices_.front().output->finish_reason());
}

// Ends the response with an error (a 500 body, or an error event on a started stream), after
// cancelling whatever still runs.
void CompletionJob::fail(const std::string& message) {
  for (Choice& c : choices_)
    if (c.submitted && !c.final_event) env_.engine.cancel(c.engine_id);
  writer_->fail(*exchange_, server_error(message));
  end(500, "error");
}

void CompletionJob::on_disconnect() {
  bool ended_now = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ended_) return;
    for (Choice& c : choices_)
      if (c.submitted && !c.final_event) env_.engine.cancel(c.engine_id);
    end(499, "abort");
    ended_now = true;
  }
  if (ended_now && on_end_) {
    std::function<void()> on_end = std::move(on_end_);
    on_end_ = nullptr;
    on_end();
  }
}

void CompletionJob::cancel() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (ended_) return;
  for (Choice& c : choices_)
    if (c.submitted && !c.final_event) env_.engine.cancel(c.engine_id);
}

void CompletionJob::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ended_) return;
    for (Choice& c : choices_)
      if (c.submitted && !c.final_event) env_.engine.cancel(c.engine_id);
    const int status = writer_->shutdown(*exchange_, outputs(), usage());
    end(status, "abort");
  }
  run_on_end();
}

void CompletionJob::run_on_end() {
  if (!on_end_) return;
  std::function<void()> on_end = std::move(on_end_);
  on_end_ = nullptr;
  on_end();
}

void CompletionJob::end(int status, const std::string& finish_reason) {
  ended_ = true;
  if (counted_waiting_) {
    env_.waiting.fetch_sub(1);
    counted_waiting_ = false;
  }
  const Usage u = usage();
  FinishedRequest finished;
  finished.e2e_seconds = seconds_between(arrival_, Clock::now());
  finished.queue_seconds = queue_seconds_;
  Clock::time_point last_token{};
  for (const Choice& c : choices_) {
    last_token = std::max(last_token, c.last_token);
    finished.max_generation_tokens =
        std::max(finished.max_generation_tokens, c.output->completion_tokens());
  }
  if (first_token_seen_) {
    finished.first_token_seconds = seconds_between(arrival_, first_token_);
    finished.decode_seconds = seconds_between(first_token_, last_token);
  }
  finished.prompt_tokens = u.prompt_tokens;
  finished.generation_tokens = u.completion_tokens;
  // Choices per prompt (a completions request may carry several prompts).
  finished.n = static_cast<uint32_t>(choices_.size() / std::max<size_t>(1, prompt_tokens_.size()));
  finished.max_tokens = max_tokens_;
  finished.finish_reason = finish_reason;
  env_.metrics.request_finished(finished);
  // The HTTP layer's part (parsing the request, writing the response) is known once the
  // response has been written.
  ServerMetrics& metrics = env_.metrics;
  const double router_seconds = router_seconds_;
  exchange_->on_finished([&metrics, router_seconds](double http_seconds) {
    metrics.request_overhead(router_seconds + http_seconds);
  });
  env_.metrics.http_request(handler_, status);
}

}  // namespace v4::router
