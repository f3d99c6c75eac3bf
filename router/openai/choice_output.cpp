// One choice's output pipeline (spec §5.8): token bytes -> UTF-8 stream -> stop matcher -> DSML
// parser (chat) -> OpenAI deltas, with logprob entries released as their text is.
#include "router/openai/choice_output.h"

#include <deque>
#include <limits>
#include <optional>
#include <utility>

#include "model/chat/chat_encoder.h"
#include "model/text/detokenizer.h"

namespace v4::router {

struct ChoiceOutput::State {
  State(const Tokenizer& t, ChoiceOutputOptions o, DsmlParserOptions parser_options)
      : tokenizer(t),
        options(std::move(o)),
        matcher(options.stop),
        parser(std::move(parser_options)),
        reasoning(options.chat && options.thinking),
        lenient(!options.require_tool_call) {}

  const Tokenizer& tokenizer;
  ChoiceOutputOptions options;
  Utf8Stream utf8;
  StopMatcher matcher;
  DsmlParser parser;  // chat only
  TokenId think_end = -1, dsml = -1;
  bool reasoning;           // chat in thinking mode until </think>
  bool in_block = false;    // a DSML marker was parsed: the rest bypasses the stop matcher
  bool call_limit = false;  // single_tool_call and the first invoke is complete: output ends
  // Broken markup goes out as content and the output goes on (header comment); only with
  // require_tool_call does it end the output as an error.
  bool lenient;
  bool malformed = false;   // strict: the markup broke the grammar, the output ends as an error
  bool finalizing = false;  // the output has ended; the parser is closing what is open
  bool keep_cut = false;    // lenient, and the model ended the output: an open block is content
  bool cut = false;         // the output ended inside the tool-call block, which is dropped
  std::string warning;      // the parser's word for what was malformed
  // The call being parsed: sent only once its invoke closes.
  std::optional<ChoiceToolCall> open_call;
  bool first_event = true;
  ChoiceDelta primed;  // what the forced output produced, returned by the first push

  // Logprob entries wait until the matcher releases the byte where their text starts. Offsets
  // count the text given to the matcher and the text it released.
  struct Pending {
    uint64_t start;
    LogprobEntry entry;
  };
  std::deque<Pending> pending;
  uint64_t input_bytes = 0;
  uint64_t released_bytes = 0;
  uint32_t text_offset = 0;  // code points of the released entries' texts
};

namespace {

constexpr TokenId kNoToken = std::numeric_limits<TokenId>::min();

uint32_t code_points(std::string_view text) {
  uint32_t count = 0;
  for (char c : text) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return count;
}

LogprobEntry make_entry(const Tokenizer& tokenizer, const EngineEvent& event, uint32_t top) {
  auto fill = [&](int32_t token, std::string& text, std::vector<uint8_t>& bytes) {
    const std::string_view raw = tokenizer.token_bytes(token);
    text = utf8_replace_invalid(raw);
    bytes.assign(raw.begin(), raw.end());
  };
  LogprobEntry entry;
  entry.token = event.token;
  entry.logprob = event.logprob;
  fill(event.token, entry.text, entry.bytes);
  for (size_t i = 0; i < event.top_logprobs.size() && i < top; ++i) {
    const EngineTokenLogprob& candidate = event.top_logprobs[i];
    std::string text;
    std::vector<uint8_t> bytes;
    fill(candidate.token, text, bytes);
    entry.top.emplace_back(std::move(text), candidate.logprob);
    entry.top_bytes.push_back(std::move(bytes));
    entry.top_tokens.push_back(candidate.token);
  }
  return entry;
}

}  // namespace

Result<ChoiceOutput> ChoiceOutput::create(const Tokenizer& tokenizer, ChoiceOutputOptions options) {
  for (int32_t id : options.forced_output) {
    if (!tokenizer.is_valid(id)) {
      return Status::error("forced output token " + std::to_string(id) + " is out of range");
    }
  }
  if (!options.forced_output.empty() && !(options.chat && options.parse_tools)) {
    return Status::error("forced output needs chat with tool parsing");
  }
  ChoiceOutput out(tokenizer, std::move(options));
  State& s = *out.state_;
  if (s.options.chat && (s.think_end < 0 || s.dsml < 0)) {
    return Status::error(std::string("tokenizer lacks the ") + kThinkEndText + " or " + kDsmlText +
                         " token");
  }
  // The forced tokens are prompt, not output: no stop strings, counts or logprobs (§5.8).
  const std::vector<int32_t> forced = s.options.forced_output;
  for (int32_t id : forced) {
    const std::string_view bytes = tokenizer.token_bytes(id);
    if (id == s.think_end && s.reasoning) {
      out.to_parser(id, bytes, s.primed);
      s.reasoning = false;
    } else {
      if (id == s.dsml) s.in_block = true;
      out.to_parser(id == s.dsml ? id : -1, bytes, s.primed);
    }
  }
  return out;
}

ChoiceOutput::ChoiceOutput(const Tokenizer& tokenizer, ChoiceOutputOptions options) {
  const TokenId think_end = tokenizer.special_token_id(kThinkEndText).value_or(kNoToken);
  const TokenId dsml = tokenizer.special_token_id(kDsmlText).value_or(kNoToken);
  DsmlParserOptions parser_options;
  parser_options.thinking = options.chat && options.thinking;
  parser_options.tool_call_id_prefix = options.tool_call_id_prefix;
  // Text is fed with id -1, so every marker the parser must not see is kNoToken: EOS (the
  // parser ends at finish()), and ｜DSML｜ unless tools are parsed.
  parser_options.think_end_token = think_end;
  parser_options.dsml_token = options.parse_tools ? dsml : kNoToken;
  parser_options.eos_token = kNoToken;
  state_ = std::make_shared<State>(tokenizer, std::move(options), std::move(parser_options));
  state_->think_end = think_end;
  state_->dsml = dsml;
}

bool ChoiceOutput::stopped() const {
  return state_->matcher.stopped() || state_->call_limit || state_->malformed;
}

const std::string& ChoiceOutput::stop_string() const { return state_->matcher.matched(); }

ChoiceDelta ChoiceOutput::push(const EngineEvent& event) {
  State& s = *state_;
  ChoiceDelta delta = std::exchange(s.primed, ChoiceDelta());
  if (done()) return delta;
  if (s.first_event) {
    cached_tokens_ = event.cached_tokens;
    s.first_event = false;
  }
  if (event.token >= 0) {
    ++completion_tokens_;
    if (event.finish != EngineFinish::kStop) on_token(event, delta);
  }
  if (stopped()) {
    finalize(delta, /*by_model=*/false);
    finish("stop");
    return delta;
  }
  switch (event.finish) {
    case EngineFinish::kNone:
      return delta;
    case EngineFinish::kStop:
      finalize(delta, /*by_model=*/true);
      finish("stop");
      break;
    case EngineFinish::kLength:
      finalize(delta, /*by_model=*/false);
      finish("length");
      break;
    case EngineFinish::kCancelled:
      finalize(delta, /*by_model=*/false);
      finish("abort");
      break;
    case EngineFinish::kError:
      finalize(delta, /*by_model=*/false);
      finish("error");
      break;
  }
  return delta;
}

void ChoiceOutput::finish(std::string reason) {
  const State& s = *state_;
  const bool called = s.options.chat && s.options.parse_tools && !tool_calls_.empty();
  if (s.malformed) {
    error_ = "the model wrote malformed tool-call markup (" + s.warning + ")";
  } else if (s.cut && reason == "stop") {
    error_ = "the model's output ended inside a tool call";
  } else if (s.options.require_tool_call && !called && reason == "stop") {
    error_ = "the model wrote no tool call although 'tool_choice' requires one";
  }
  if (!error_.empty()) {
    finish_reason_ = "error";
    return;
  }
  finish_reason_ = reason == "stop" && called ? "tool_calls" : std::move(reason);
}

// A warning while generating is malformed markup; at the end it means the output stopped inside
// the block. Either way the parser has closed the open call (dropped here: its arguments are
// incomplete) and hands the markup back as content. That content is shown (lenient), except
// for a block cut by the length limit or a cancellation, which is dropped whole.
void ChoiceOutput::on_warning(const std::string& what) {
  State& s = *state_;
  if (s.malformed || s.cut) return;
  s.open_call.reset();
  constexpr std::string_view kPrefix = "malformed DSML: ";
  std::string why = what.starts_with(kPrefix) ? what.substr(kPrefix.size()) : what;
  if (s.finalizing ? !s.keep_cut : !s.lenient) {
    s.warning = std::move(why);
    if (s.finalizing) {
      s.cut = true;
    } else {
      s.malformed = true;
    }
    return;
  }
  s.in_block = false;  // the parser reads prose again; stop strings apply to it
  warnings_.push_back(std::move(why));
}

void ChoiceOutput::on_token(const EngineEvent& event, ChoiceDelta& delta) {
  State& s = *state_;
  const int32_t id = event.token;
  if (s.options.chat && s.reasoning) ++reasoning_tokens_;
  std::optional<LogprobEntry> entry;
  if (s.options.logprobs) entry = make_entry(s.tokenizer, event, s.options.top_logprobs);
  const bool marker = s.options.chat && ((id == s.think_end && s.reasoning) ||
                                         (id == s.dsml && s.options.parse_tools && !s.reasoning));
  if (marker || s.tokenizer.token_type(id) == TokenType::kControl) {
    on_special(id, entry ? &*entry : nullptr, delta);
    return;
  }
  if (entry) s.pending.push_back({s.input_bytes, std::move(*entry)});
  on_text(s.utf8.push(s.tokenizer.token_bytes(id)), delta);
}

void ChoiceOutput::on_special(int32_t token, LogprobEntry* entry, ChoiceDelta& delta) {
  State& s = *state_;
  // A stop string never spans a special token: what is held can be released now.
  on_text(s.utf8.finish(), delta);
  if (s.matcher.stopped()) return;
  const std::string tail = s.matcher.flush();
  s.released_bytes += tail.size();
  if (!tail.empty()) to_parser(-1, tail, delta);
  if (entry != nullptr) s.pending.push_back({s.input_bytes, std::move(*entry)});
  release_logprobs(/*all=*/true, delta);
  if (token == s.think_end && s.reasoning) {
    s.reasoning = false;
    to_parser(token, s.tokenizer.token_bytes(token), delta);
  } else if (token == s.dsml && s.options.chat && s.options.parse_tools) {
    s.in_block = true;
    to_parser(token, s.tokenizer.token_bytes(token), delta);
  }
  // Other control tokens (BOS, EOS with ignore_eos, ...) are not text.
}

void ChoiceOutput::on_text(std::string_view text, ChoiceDelta& delta) {
  State& s = *state_;
  if (text.empty()) return;
  s.input_bytes += text.size();
  const std::string released = s.in_block ? std::string(text) : s.matcher.push(text);
  s.released_bytes += released.size();
  if (!released.empty()) to_parser(-1, released, delta);
  release_logprobs(/*all=*/false, delta);
  if (s.matcher.stopped()) s.pending.clear();  // their text starts at or after the stop
}

void ChoiceOutput::release_logprobs(bool all, ChoiceDelta& delta) {
  State& s = *state_;
  while (!s.pending.empty() && (all || s.pending.front().start < s.released_bytes)) {
    LogprobEntry& entry = s.pending.front().entry;
    entry.text_offset = s.text_offset;
    s.text_offset += code_points(entry.text);
    delta.logprobs.push_back(entry);
    logprobs_.push_back(std::move(entry));
    s.pending.pop_front();
  }
}

void ChoiceOutput::to_parser(int32_t token, std::string_view bytes, ChoiceDelta& delta) {
  State& s = *state_;
  if (s.call_limit || s.malformed) return;
  if (!s.options.chat) {
    delta.content.append(bytes);
    content_.append(bytes);
    return;
  }
  std::vector<DsmlEvent> events;
  s.parser.feed(token, bytes, events);
  apply(events, delta);
}

void ChoiceOutput::apply(std::vector<DsmlEvent>& events, ChoiceDelta& delta) {
  State& s = *state_;
  for (DsmlEvent& event : events) {
    switch (event.kind) {
      case DsmlEvent::Kind::kReasoningDelta:
        delta.reasoning += event.text;
        reasoning_ += event.text;
        break;
      case DsmlEvent::Kind::kContentDelta:
        // After a warning the parser hands the broken markup back as content: never shown.
        if (s.malformed || s.cut) break;
        delta.content += event.text;
        content_ += event.text;
        break;
      case DsmlEvent::Kind::kToolCallBegin:
        if (s.malformed || s.cut) break;
        s.open_call = ChoiceToolCall{event.id, event.name, "", ""};
        break;
      case DsmlEvent::Kind::kToolCallArgumentsDelta:
        if (s.open_call) s.open_call->arguments += event.text;
        break;
      case DsmlEvent::Kind::kToolCallEnd: {
        // A call closed by the parser's recovery (after a warning) is incomplete: dropped.
        if (!s.open_call || s.malformed || s.cut) break;
        ChoiceToolCall call = std::move(*s.open_call);
        s.open_call.reset();
        call.dsml = std::move(event.dsml);
        const int index = static_cast<int>(tool_calls_.size());
        delta.tool_calls.push_back(ToolCallDelta{index, call.id, call.name, call.arguments});
        tool_calls_.push_back(std::move(call));
        if (s.options.single_tool_call) {
          s.call_limit = true;
          return;  // nothing after the first call is output
        }
        break;
      }
      case DsmlEvent::Kind::kWarning:
        on_warning(event.text);
        break;
    }
  }
}

void ChoiceOutput::finalize(ChoiceDelta& delta, bool by_model) {
  State& s = *state_;
  s.keep_cut = s.lenient && by_model;
  if (!s.matcher.stopped()) {
    on_text(s.utf8.finish(), delta);
    if (!s.matcher.stopped()) {
      const std::string tail = s.matcher.flush();
      s.released_bytes += tail.size();
      if (!tail.empty()) to_parser(-1, tail, delta);
      release_logprobs(/*all=*/true, delta);
    }
  }
  s.pending.clear();
  // After the one allowed call the tool-call block stays open on purpose: closing it in the
  // parser would report the cut as malformed markup.
  if (s.options.chat && !s.call_limit && !s.malformed) {
    s.finalizing = true;
    std::vector<DsmlEvent> events;
    s.parser.finish(events);
    apply(events, delta);
  }
  // The model ended its turn inside the reasoning (no </think>): what it wrote is all the
  // answer there is, so it is also returned as content rather than left in reasoning alone.
  if (s.options.chat && s.reasoning && s.keep_cut && !reasoning_.empty()) {
    delta.content += reasoning_;
    content_ += reasoning_;
    warnings_.push_back("the output ended inside the reasoning, without </think>");
  }
}

}  // namespace v4::router
