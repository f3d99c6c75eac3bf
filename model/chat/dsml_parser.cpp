// DSML output parsing (spec §5.8). The parser is a small state machine over two inputs: text
// bytes and the ｜DSML｜ token. Text that may still turn out to be markup ("<", "</" and the
// blank line before a tool-calls block) is held back until the next token decides.
#include "model/chat/dsml_parser.h"

#include "model/chat/chat_encoder.h"
#include "model/chat/chat_json.h"

namespace v4 {
namespace {

constexpr size_t kMaxTagHeader = 4096;  // a longer tag header is not DSML

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

DsmlEvent make_event(DsmlEvent::Kind kind, std::string text, std::string name = {},
                     std::string id = {}, int index = -1, std::string dsml = {}) {
  DsmlEvent event;
  event.kind = kind;
  event.text = std::move(text);
  event.name = std::move(name);
  event.id = std::move(id);
  event.index = index;
  event.dsml = std::move(dsml);
  return event;
}

std::string json_escaped(std::string_view text) {
  std::string quoted;
  append_python_json_string(quoted, text);
  return quoted.substr(1, quoted.size() - 2);
}

// Text between DSML tags may be whitespace, then "<" or "</" right before the next DSML token.
bool is_between_tags_prefix(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && is_space(text[i])) ++i;
  std::string_view rest = text.substr(i);
  return rest.empty() || rest == "<" || rest == "</";
}

}  // namespace

Result<DsmlParserOptions> dsml_parser_options(const Tokenizer& tokenizer, bool thinking) {
  DsmlParserOptions options;
  options.thinking = thinking;
  const std::pair<const char*, TokenId*> markers[] = {{kDsmlText, &options.dsml_token},
                                                      {kThinkEndText, &options.think_end_token},
                                                      {kEosText, &options.eos_token}};
  for (const auto& [text, id] : markers) {
    std::optional<TokenId> found = tokenizer.special_token_id(text);
    if (!found) return Status::error(std::string("tokenizer has no special token ") + text);
    *id = *found;
  }
  return options;
}

DsmlParser::DsmlParser(DsmlParserOptions options)
    : options_(std::move(options)), mode_(options_.thinking ? Mode::kReasoning : Mode::kContent) {}

void DsmlParser::feed(TokenId id, std::string_view bytes, std::vector<DsmlEvent>& events) {
  if (mode_ == Mode::kDone) return;
  if (id == options_.eos_token) {
    finish(events);
  } else if (id == options_.think_end_token && mode_ == Mode::kReasoning) {
    emit_prose(events, /*final=*/true);
    flush_channel(events);
    mode_ = Mode::kContent;
  } else if (id == options_.dsml_token && mode_ != Mode::kReasoning) {
    on_dsml(events);
  } else {
    on_text(bytes, events);
  }
}

void DsmlParser::on_text(std::string_view bytes, std::vector<DsmlEvent>& events) {
  switch (mode_) {
    case Mode::kReasoning:
    case Mode::kContent:
      held_.append(bytes);
      emit_prose(events, /*final=*/false);
      break;
    case Mode::kTag:
      tag_.append(bytes);
      on_tag_text(events);
      break;
    case Mode::kBlock:
    case Mode::kInvoke:
      raw_.append(bytes);
      if (in_invoke_) invoke_raw_.append(bytes);
      held_.append(bytes);
      if (!is_between_tags_prefix(held_)) malformed("text between DSML tags", events);
      break;
    case Mode::kValue:
      raw_.append(bytes);
      invoke_raw_.append(bytes);
      held_.append(bytes);
      emit_value(events, /*final=*/false);
      break;
    case Mode::kAfterBlock:
      held_.append(bytes);
      for (char c : held_) {
        if (!is_space(c)) {
          events.push_back(
              make_event(DsmlEvent::Kind::kWarning, "text after the DSML tool calls block"));
          mode_ = Mode::kContent;
          emit_prose(events, /*final=*/false);
          break;
        }
      }
      break;
    case Mode::kDone:
      break;
  }
}

void DsmlParser::on_dsml(std::vector<DsmlEvent>& events) {
  switch (mode_) {
    case Mode::kContent: {
      if (!ends_with(held_, "<") || ends_with(held_, "</")) {
        // The model used the marker outside a tag: keep it as prose.
        events.push_back(
            make_event(DsmlEvent::Kind::kWarning, "DSML token outside a tool calls block"));
        held_ += kDsmlText;
        emit_prose(events, /*final=*/false);
        return;
      }
      // The block is introduced by "\n\n<": the blank line belongs to the markup.
      size_t start = held_.size() - 1;
      for (int newlines = 0; newlines < 2 && start > 0 && held_[start - 1] == '\n'; ++newlines) {
        --start;
      }
      raw_ = held_.substr(start) + kDsmlText;
      held_.resize(start);
      emit_prose(events, /*final=*/true);
      flush_channel(events);
      tag_from_ = Mode::kContent;
      tag_closing_ = false;
      break;
    }
    case Mode::kBlock:
    case Mode::kInvoke: {
      if (!ends_with(held_, "<") && !ends_with(held_, "</")) {
        return malformed("DSML token without \"<\" before it", events);
      }
      tag_closing_ = ends_with(held_, "</");
      raw_ += kDsmlText;
      if (in_invoke_) invoke_raw_ += kDsmlText;
      if (mode_ == Mode::kBlock && !tag_closing_) invoke_raw_ = std::string("<") + kDsmlText;
      tag_from_ = mode_;
      break;
    }
    case Mode::kValue: {
      if (!ends_with(held_, "</")) return malformed("DSML token inside a parameter value", events);
      held_.resize(held_.size() - 2);
      emit_value(events, /*final=*/true);
      flush_channel(events);
      if (value_is_string_) {
        events.push_back(make_event(DsmlEvent::Kind::kToolCallArgumentsDelta, "\"", "",
                                    options_.tool_call_id_prefix + std::to_string(tool_calls_),
                                    tool_calls_));
      }
      raw_ += kDsmlText;
      invoke_raw_ += kDsmlText;
      tag_from_ = Mode::kValue;
      tag_closing_ = true;
      break;
    }
    case Mode::kTag:
      return malformed("DSML token inside a DSML tag", events);
    case Mode::kAfterBlock:
      return malformed("DSML token after the tool calls block", events);
    case Mode::kReasoning:
    case Mode::kDone:
      return;
  }
  held_.clear();
  tag_.clear();
  mode_ = Mode::kTag;
}

void DsmlParser::on_tag_text(std::vector<DsmlEvent>& events) {
  // The header this tag must have, given where it opened.
  std::string_view fixed;
  std::string_view attribute_tag;  // "invoke" or "parameter" (opening tags with a name)
  if (tag_from_ == Mode::kContent && !tag_closing_) fixed = "tool_calls>";
  if (tag_from_ == Mode::kBlock) {
    if (tag_closing_) {
      fixed = "tool_calls>";
    } else {
      attribute_tag = "invoke";
    }
  }
  if (tag_from_ == Mode::kInvoke) {
    if (tag_closing_) {
      fixed = "invoke>";
    } else {
      attribute_tag = "parameter";
    }
  }
  if (tag_from_ == Mode::kValue) fixed = "parameter>";

  if (!fixed.empty()) {
    const size_t n = std::min(tag_.size(), fixed.size());
    if (tag_.compare(0, n, fixed.substr(0, n)) != 0) {
      return malformed("unexpected DSML tag \"" + tag_.substr(0, 32) + "\"", events);
    }
    if (tag_.size() < fixed.size()) return;  // wait for the rest of the header
    close_tag(fixed, events);
    return;
  }
  const std::string prefix = std::string(attribute_tag) + " name=\"";
  const size_t n = std::min(tag_.size(), prefix.size());
  if (tag_.compare(0, n, prefix.substr(0, n)) != 0) {
    return malformed("unexpected DSML tag \"" + tag_.substr(0, 32) + "\"", events);
  }
  if (tag_.size() > kMaxTagHeader) return malformed("DSML tag header too long", events);
  size_t end = std::string::npos;
  if (attribute_tag == "invoke") {
    const size_t quote = tag_.find("\">", prefix.size());
    if (quote != std::string::npos) end = quote + 2;
  } else {
    const size_t t = tag_.find("\" string=\"true\">", prefix.size());
    const size_t f = tag_.find("\" string=\"false\">", prefix.size());
    if (t != std::string::npos && (f == std::string::npos || t < f)) {
      end = t + 16;
    } else if (f != std::string::npos) {
      end = f + 17;
    }
  }
  if (end == std::string::npos) return;  // header incomplete
  close_tag(std::string_view(tag_).substr(0, end), events);
}

bool DsmlParser::close_tag(std::string_view header, std::vector<DsmlEvent>& events) {
  const std::string consumed(header);
  const std::string rest = tag_.substr(header.size());
  tag_.clear();
  raw_ += consumed;
  if (in_invoke_ || (tag_from_ == Mode::kBlock && !tag_closing_)) invoke_raw_ += consumed;
  const std::string id = options_.tool_call_id_prefix + std::to_string(tool_calls_);
  auto arguments = [&](std::string text) {
    events.push_back(
        make_event(DsmlEvent::Kind::kToolCallArgumentsDelta, std::move(text), "", id, tool_calls_));
  };

  if (tag_from_ == Mode::kContent) {
    mode_ = Mode::kBlock;
  } else if (tag_from_ == Mode::kBlock && tag_closing_) {
    mode_ = Mode::kAfterBlock;
    raw_.clear();
  } else if (tag_from_ == Mode::kBlock) {
    const std::string prefix = "invoke name=\"";
    const std::string name =
        utf8_replace_invalid(consumed.substr(prefix.size(), consumed.size() - prefix.size() - 2));
    events.push_back(make_event(DsmlEvent::Kind::kToolCallBegin, "", name, id, tool_calls_));
    in_invoke_ = true;
    params_in_invoke_ = 0;
    arguments("{");
    mode_ = Mode::kInvoke;
  } else if (tag_from_ == Mode::kInvoke && tag_closing_) {
    arguments("}");
    events.push_back(
        make_event(DsmlEvent::Kind::kToolCallEnd, "", "", id, tool_calls_, invoke_raw_));
    in_invoke_ = false;
    invoke_raw_.clear();
    ++tool_calls_;
    raw_.clear();  // a complete call: recovery never re-emits it
    mode_ = Mode::kBlock;
  } else if (tag_from_ == Mode::kInvoke) {
    const std::string prefix = "parameter name=\"";
    value_is_string_ = ends_with(consumed, "\"true\">");
    const size_t suffix = value_is_string_ ? 16 : 17;
    const std::string key = utf8_replace_invalid(
        consumed.substr(prefix.size(), consumed.size() - prefix.size() - suffix));
    std::string text = params_in_invoke_ > 0 ? ", " : "";
    append_python_json_string(text, key);
    text += ": ";
    if (value_is_string_) text += "\"";
    arguments(std::move(text));
    ++params_in_invoke_;
    mode_ = Mode::kValue;
  } else {  // "</｜DSML｜parameter>"
    mode_ = Mode::kInvoke;
  }
  held_.clear();
  if (!rest.empty()) on_text(rest, events);
  return true;
}

void DsmlParser::emit_prose(std::vector<DsmlEvent>& events, bool final) {
  size_t keep = 0;
  if (!final && mode_ == Mode::kContent) {
    // Possible start of "\n\n<｜DSML｜tool_calls>": hold "<" and up to two newlines before it.
    size_t end = held_.size();
    if (end > 0 && held_[end - 1] == '<') {
      keep = 1;
      --end;
    }
    for (int i = 0; i < 2 && end > 0 && held_[end - 1] == '\n'; ++i, --end) ++keep;
  }
  const size_t emit_size = held_.size() - keep;
  if (emit_size == 0) return;
  emit(mode_ == Mode::kReasoning ? Channel::kReasoning : Channel::kContent,
       std::string_view(held_).substr(0, emit_size), events);
  held_.erase(0, emit_size);
}

void DsmlParser::emit_value(std::vector<DsmlEvent>& events, bool final) {
  size_t keep = 0;
  if (!final) {
    if (ends_with(held_, "</")) {
      keep = 2;
    } else if (ends_with(held_, "<")) {
      keep = 1;
    }
  }
  const size_t emit_size = held_.size() - keep;
  if (emit_size == 0) return;
  emit(Channel::kArguments, std::string_view(held_).substr(0, emit_size), events);
  held_.erase(0, emit_size);
}

void DsmlParser::emit(Channel channel, std::string_view bytes, std::vector<DsmlEvent>& events) {
  if (channel != channel_) {
    flush_channel(events);
    channel_ = channel;
  }
  std::string text = utf8_.push(bytes);
  if (!text.empty()) push_event(channel, std::move(text), events);
}

void DsmlParser::flush_channel(std::vector<DsmlEvent>& events) {
  if (channel_ == Channel::kNone) return;
  std::string rest = utf8_.finish();
  if (!rest.empty()) push_event(channel_, std::move(rest), events);
  channel_ = Channel::kNone;
}

void DsmlParser::push_event(Channel channel, std::string text, std::vector<DsmlEvent>& events) {
  switch (channel) {
    case Channel::kReasoning:
      events.push_back(make_event(DsmlEvent::Kind::kReasoningDelta, std::move(text)));
      break;
    case Channel::kContent:
      events.push_back(make_event(DsmlEvent::Kind::kContentDelta, std::move(text)));
      break;
    case Channel::kArguments:
      events.push_back(make_event(DsmlEvent::Kind::kToolCallArgumentsDelta,
                                  value_is_string_ ? json_escaped(text) : std::move(text), "",
                                  options_.tool_call_id_prefix + std::to_string(tool_calls_),
                                  tool_calls_));
      break;
    case Channel::kNone:
      break;
  }
}

void DsmlParser::malformed(const std::string& why, std::vector<DsmlEvent>& events) {
  flush_channel(events);
  events.push_back(make_event(DsmlEvent::Kind::kWarning, "malformed DSML: " + why));
  if (in_invoke_) {
    // The call was announced already: close it, its arguments are incomplete.
    events.push_back(make_event(DsmlEvent::Kind::kToolCallEnd, "", "",
                                options_.tool_call_id_prefix + std::to_string(tool_calls_),
                                tool_calls_, invoke_raw_));
    ++tool_calls_;
    in_invoke_ = false;
    invoke_raw_.clear();
  }
  std::string text = raw_;
  if (mode_ == Mode::kTag) text += tag_;
  raw_.clear();
  tag_.clear();
  held_.clear();
  mode_ = Mode::kContent;
  held_ = std::move(text);
  emit_prose(events, /*final=*/false);
}

void DsmlParser::finish(std::vector<DsmlEvent>& events) {
  switch (mode_) {
    case Mode::kReasoning:
    case Mode::kContent:
      emit_prose(events, /*final=*/true);
      break;
    case Mode::kAfterBlock:
      break;  // only whitespace is left there
    case Mode::kTag:
    case Mode::kBlock:
    case Mode::kInvoke:
    case Mode::kValue:
      malformed("output ended inside a DSML block", events);
      emit_prose(events, /*final=*/true);
      break;
    case Mode::kDone:
      return;
  }
  flush_channel(events);
  mode_ = Mode::kDone;
}

}  // namespace v4
