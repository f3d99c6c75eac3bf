// The DSML tool-call matcher (spec §5.8): the fixed pieces of the block as a table of literals,
// names matched against the offered ones, and the values.
#include "model/grammar/dsml_tool_matcher.h"

#include <array>

namespace v4 {
namespace {

// Stands for the marker token inside the literal table. A text byte never matches it (step()
// skips it), so a text token with this byte cannot pass for the marker.
constexpr char kMarker = '\xFF';

// The fixed pieces of the block (spec §5.8), as the chat encoder writes them.
enum Literal : int {
  kBlockRest,         // after "<" M in free text: the rest of the block opener
  kInvokeOpen,        // first invoke
  kNlInvokeOpen,      // a further invoke
  kParamOpen,         // first parameter of an invoke
  kNlParamOpen,       // a further parameter
  kInvokeClose,       //
  kBlockClose,        //
  kStringTrue,        // after `string="`
  kStringFalse,       //
  kCloseAfterMarker,  // a RAW value ended with "</" M
  kCloseAfterLt,      // a JSON value ended with "<"
  kLiteralCount
};

constexpr std::array<std::string_view, kLiteralCount> kLiterals = {
    "tool_calls>\n",
    "<\xFFinvoke name=\"",
    "\n<\xFFinvoke name=\"",
    "<\xFFparameter name=\"",
    "\n<\xFFparameter name=\"",
    "\n</\xFFinvoke>",
    "\n</\xFFtool_calls>",
    "true\">",
    "false\">",
    "parameter>",
    "/\xFFparameter>",
};

constexpr uint16_t bit(int literal) { return static_cast<uint16_t>(1u << literal); }

}  // namespace

bool raw_text_step(uint8_t& utf8, uint8_t byte) {
  if (utf8 == 0 && byte < 0x80) return byte >= 0x20 || byte == '\n' || byte == '\t' || byte == '\r';
  bool new_char = false;
  return string_body_step(utf8, byte, new_char) == StringByte::kStay;
}

DsmlToolMatcher::DsmlToolMatcher(std::shared_ptr<const DsmlToolGrammar> grammar)
    : grammar_(std::move(grammar)), reasoning_(grammar_->reasoning) {
  switch (grammar_->start) {
    case DsmlStart::kFree:
      phase_ = Phase::kFree;
      break;
    case DsmlStart::kBlock:
      expect(bit(kInvokeOpen));
      break;
    case DsmlStart::kInvoke: {
      tool_ = grammar_->start_tool;
      calls_ = 1;
      const DsmlTool& tool = grammar_->tools[static_cast<size_t>(tool_)];
      uint16_t next = tool.parameters.empty() ? 0 : bit(kParamOpen);
      bool any_required = false;
      for (const DsmlToolParameter& p : tool.parameters) any_required |= p.required;
      if (!any_required) next |= bit(kInvokeClose);
      expect(next);
      break;
    }
  }
}

void DsmlToolMatcher::expect(uint16_t literals) {
  phase_ = Phase::kLiteral;
  literals_ = literals;
  offset_ = 0;
}

void DsmlToolMatcher::enter(Phase phase) {
  phase_ = phase;
  offset_ = 0;
  candidates_.clear();
  if (phase == Phase::kToolName) {
    for (uint32_t i = 0; i < grammar_->tools.size(); ++i) candidates_.push_back(i);
  } else if (phase == Phase::kParamName) {
    const DsmlTool& tool = grammar_->tools[static_cast<size_t>(tool_)];
    for (uint32_t i = 0; i < tool.parameters.size(); ++i) {
      if (!(used_ >> i & 1)) candidates_.push_back(i);
    }
  } else if (phase == Phase::kRawChoice) {
    const DsmlToolParameter& p =
        grammar_->tools[static_cast<size_t>(tool_)].parameters[static_cast<size_t>(param_)];
    for (uint32_t i = 0; i < p.raw_choices.size(); ++i) candidates_.push_back(i);
  } else if (phase == Phase::kRaw) {
    utf8_ = 0;
    tail_[0] = tail_[1] = 0;
  } else if (phase == Phase::kJson) {
    const DsmlTool& tool = grammar_->tools[static_cast<size_t>(tool_)];
    json_.emplace(tool.parameters[static_cast<size_t>(param_)].value);
  }
}

// After a parameter's closing tag: another unused parameter, or the invoke's end once every
// required one is there.
void DsmlToolMatcher::after_parameter() {
  const DsmlTool& tool = grammar_->tools[static_cast<size_t>(tool_)];
  bool unused = false, required_left = false;
  for (size_t i = 0; i < tool.parameters.size(); ++i) {
    if (used_ >> i & 1) continue;
    unused = true;
    required_left |= tool.parameters[i].required;
  }
  expect(static_cast<uint16_t>((unused ? bit(kNlParamOpen) : 0) |
                               (required_left ? 0 : bit(kInvokeClose))));
}

void DsmlToolMatcher::after_literal(int literal) {
  switch (literal) {
    case kBlockRest:
      calls_ = 0;
      expect(bit(kInvokeOpen));
      return;
    case kInvokeOpen:
    case kNlInvokeOpen:
      enter(Phase::kToolName);
      return;
    case kParamOpen:
    case kNlParamOpen:
      enter(Phase::kParamName);
      return;
    case kInvokeClose:
      expect(static_cast<uint16_t>((calls_ < grammar_->max_calls ? bit(kNlInvokeOpen) : 0) |
                                   bit(kBlockClose)));
      return;
    case kBlockClose:
      phase_ = Phase::kDone;
      return;
    case kStringTrue: {
      const DsmlToolParameter& p =
          grammar_->tools[static_cast<size_t>(tool_)].parameters[static_cast<size_t>(param_)];
      enter(p.raw_text ? Phase::kRaw : Phase::kRawChoice);
      return;
    }
    case kStringFalse:
      enter(Phase::kJson);
      return;
    default:  // a parameter's closing tag
      after_parameter();
      return;
  }
}

bool DsmlToolMatcher::step_names(uint8_t byte) {
  const DsmlTool* tool = tool_ >= 0 ? &grammar_->tools[static_cast<size_t>(tool_)] : nullptr;
  auto header = [&](uint32_t i) -> const std::string& {
    return phase_ == Phase::kToolName ? grammar_->tools[i].header : tool->parameters[i].header;
  };
  std::erase_if(candidates_, [&](uint32_t i) {
    const std::string& h = header(i);
    return offset_ >= h.size() || static_cast<uint8_t>(h[offset_]) != byte;
  });
  if (candidates_.empty()) return false;
  ++offset_;
  // Headers end with a quote that names never hold, so at most one is whole here.
  for (uint32_t i : candidates_) {
    if (header(i).size() != offset_) continue;
    if (phase_ == Phase::kToolName) {
      tool_ = static_cast<int32_t>(i);
      ++calls_;
      used_ = 0;
      const DsmlTool& chosen = grammar_->tools[i];
      bool any_required = false;
      for (const DsmlToolParameter& p : chosen.parameters) any_required |= p.required;
      expect(static_cast<uint16_t>((chosen.parameters.empty() ? 0 : bit(kParamOpen)) |
                                   (any_required ? 0 : bit(kInvokeClose))));
    } else {
      param_ = static_cast<int32_t>(i);
      used_ |= uint64_t{1} << i;
      const DsmlToolParameter& chosen = tool->parameters[i];
      const bool raw = chosen.raw_text || !chosen.raw_choices.empty();
      expect(static_cast<uint16_t>((raw ? bit(kStringTrue) : 0) | bit(kStringFalse)));
    }
    return true;
  }
  return true;
}

bool DsmlToolMatcher::step(uint8_t byte) {
  switch (phase_) {
    case Phase::kFree:
      tail_[0] = tail_[1];
      tail_[1] = static_cast<char>(byte);
      return true;
    case Phase::kLiteral: {
      uint16_t kept = 0;
      for (int i = 0; i < kLiteralCount; ++i) {
        if (!(literals_ & bit(i))) continue;
        const std::string_view text = kLiterals[static_cast<size_t>(i)];
        if (offset_ < text.size() && text[offset_] != kMarker &&
            static_cast<uint8_t>(text[offset_]) == byte)
          kept |= bit(i);
      }
      if (!kept) return false;
      literals_ = kept;
      ++offset_;
      for (int i = 0; i < kLiteralCount; ++i) {
        if ((kept & bit(i)) && kLiterals[static_cast<size_t>(i)].size() == offset_) {
          after_literal(i);
          break;
        }
      }
      return true;
    }
    case Phase::kToolName:
    case Phase::kParamName:
      return step_names(byte);
    case Phase::kRawChoice: {
      // One of the texts, then "</" (the marker follows, see marker_allowed).
      const DsmlToolParameter& p =
          grammar_->tools[static_cast<size_t>(tool_)].parameters[static_cast<size_t>(param_)];
      std::erase_if(candidates_, [&](uint32_t i) {
        const std::string& text = p.raw_choices[i];
        const size_t n = text.size();
        const char expected = offset_ < n ? text[offset_] : offset_ == n ? '<' : '/';
        return offset_ >= n + 2 || static_cast<uint8_t>(expected) != byte;
      });
      if (candidates_.empty()) return false;
      ++offset_;
      return true;
    }
    case Phase::kRaw: {
      // Any UTF-8 text: the value ends only where "</" meets the marker token (spec §5.8).
      if (!raw_text_step(utf8_, byte)) return false;
      tail_[0] = tail_[1];
      tail_[1] = static_cast<char>(byte);
      return true;
    }
    case Phase::kJson:
      // A JSON value never holds "<" outside a string: once the value may end, "<" ends it.
      if (byte == '<' && json_->accepting()) {
        json_.reset();
        expect(bit(kCloseAfterLt));
        return true;
      }
      return json_->advance(std::string_view(reinterpret_cast<const char*>(&byte), 1));
    case Phase::kDone:
      return false;
  }
  return false;
}

bool DsmlToolMatcher::marker_allowed() const {
  switch (phase_) {
    case Phase::kFree:
      return true;
    case Phase::kLiteral:
      for (int i = 0; i < kLiteralCount; ++i) {
        const std::string_view text = kLiterals[static_cast<size_t>(i)];
        if ((literals_ & bit(i)) && offset_ < text.size() && text[offset_] == kMarker) return true;
      }
      return false;
    case Phase::kRaw:
      return utf8_ == 0 && tail_[0] == '<' && tail_[1] == '/';
    case Phase::kRawChoice: {
      const DsmlToolParameter& p =
          grammar_->tools[static_cast<size_t>(tool_)].parameters[static_cast<size_t>(param_)];
      for (uint32_t i : candidates_) {
        if (p.raw_choices[i].size() + 2 == offset_) return true;
      }
      return false;
    }
    default:
      return false;
  }
}

bool DsmlToolMatcher::advance_marker() {
  if (!marker_allowed()) return false;
  switch (phase_) {
    case Phase::kFree:
      // In content the marker right after "<" (not "</") opens a block; anywhere else it is
      // prose to the parser, and the text stays free.
      if (!reasoning_ && tail_[1] == '<' && tail_[0] != '/') expect(bit(kBlockRest));
      tail_[0] = tail_[1] = 0;
      return true;
    case Phase::kRaw:
    case Phase::kRawChoice:
      expect(bit(kCloseAfterMarker));
      return true;
    default: {  // kLiteral
      uint16_t kept = 0;
      for (int i = 0; i < kLiteralCount; ++i) {
        const std::string_view text = kLiterals[static_cast<size_t>(i)];
        if ((literals_ & bit(i)) && offset_ < text.size() && text[offset_] == kMarker)
          kept |= bit(i);
      }
      literals_ = kept;
      ++offset_;  // no literal ends with the marker
      return true;
    }
  }
}

bool DsmlToolMatcher::advance(std::string_view bytes) {
  DsmlToolMatcher next = *this;
  for (char c : bytes) {
    if (!next.step(static_cast<uint8_t>(c))) return false;
  }
  *this = std::move(next);
  return true;
}

bool DsmlToolMatcher::advance_token(int32_t id, std::string_view bytes, bool is_text) {
  if (id == grammar_->marker_token) return advance_marker();
  if (phase_ != Phase::kFree) return is_text && advance(bytes);
  if (id == grammar_->reasoning_end_token && reasoning_) {
    reasoning_ = false;
  } else if (is_text) {
    return advance(bytes);
  }
  tail_[0] = tail_[1] = 0;
  return true;
}

bool dsml_grammar_accepts(std::shared_ptr<const DsmlToolGrammar> grammar, std::string_view text,
                          std::string_view marker_text) {
  if (marker_text.empty()) return false;
  DsmlToolMatcher matcher(std::move(grammar));
  size_t at = 0;
  while (at <= text.size()) {
    const size_t next = text.find(marker_text, at);
    if (!matcher.advance(text.substr(at, next == std::string_view::npos ? text.npos : next - at)))
      return false;
    if (next == std::string_view::npos) break;
    if (!matcher.advance_marker()) return false;
    at = next + marker_text.size();
  }
  return matcher.complete();
}

}  // namespace v4
