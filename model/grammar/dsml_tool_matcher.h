// The matcher of the DSML tool-call grammar (model/grammar/dsml_tool_grammar.h, spec §5.8): a
// small state machine over two inputs, text bytes and the ｜DSML｜ marker token, that holds a
// GrammarMatcher while a JSON parameter value is open. Like the structured-output matcher, it
// advances on sampled tokens only, so its state depends on the output alone.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "model/grammar/dsml_tool_grammar.h"
#include "model/grammar/grammar_matcher.h"

namespace v4 {

// One byte of a RAW value from UTF-8 state `utf8` (string_body_step's: 0, or 10..16 inside a
// character): any UTF-8 text but control bytes other than tab, newline and carriage return.
bool raw_text_step(uint8_t& utf8, uint8_t byte);

class DsmlToolMatcher {
 public:
  enum class Phase : uint8_t {
    kFree,
    kLiteral,
    kToolName,
    kParamName,
    kRaw,
    kRawChoice,
    kJson,
    kDone
  };

  explicit DsmlToolMatcher(std::shared_ptr<const DsmlToolGrammar> grammar);

  // One sampled token (not the end token): the marker, the reasoning end, another special token
  // (`is_text` false) or text. False, and no change, when the grammar does not allow it.
  bool advance_token(int32_t id, std::string_view bytes, bool is_text);
  bool advance_marker();
  bool advance(std::string_view bytes);
  // One byte, in place; false leaves the matcher unusable (callers step a copy).
  bool step(uint8_t byte);

  bool free() const { return phase_ == Phase::kFree; }  // unconstrained: any token may come
  bool marker_allowed() const;
  bool accepting() const { return phase_ == Phase::kFree || phase_ == Phase::kDone; }
  bool complete() const { return phase_ == Phase::kDone; }
  Phase phase() const { return phase_; }
  // kRaw: the UTF-8 state (string_body_step's: 0, or 10..16 inside a character).
  uint8_t raw_utf8_state() const { return utf8_; }
  // kJson: the value's matcher.
  const GrammarMatcher* json_value() const { return json_ ? &*json_ : nullptr; }
  const DsmlToolGrammar& grammar() const { return *grammar_; }

 private:
  void enter(Phase phase);
  void expect(uint16_t literals);
  void after_literal(int literal);
  void after_parameter();
  bool step_names(uint8_t byte);

  std::shared_ptr<const DsmlToolGrammar> grammar_;
  Phase phase_ = Phase::kFree;
  uint16_t literals_ = 0;             // kLiteral: the live alternatives (bits of the literal table)
  uint32_t offset_ = 0;               // bytes matched of the literal or name
  std::vector<uint32_t> candidates_;  // kToolName / kParamName / kRawChoice: still matching
  int32_t tool_ = -1, param_ = -1;
  uint64_t used_ = 0;  // parameters of the open invoke already written
  uint32_t calls_ = 0;
  bool reasoning_ = false;
  uint8_t utf8_ = 0;
  char tail_[2] = {0, 0};  // kFree / kRaw: the last two text bytes
  std::optional<GrammarMatcher> json_;
};

// Tests: whether `text` is a whole output the grammar admits, `marker_text` standing for the
// marker token wherever it occurs.
bool dsml_grammar_accepts(std::shared_ptr<const DsmlToolGrammar> grammar, std::string_view text,
                          std::string_view marker_text);

}  // namespace v4
