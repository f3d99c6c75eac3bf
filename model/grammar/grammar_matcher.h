// The pushdown matcher that runs a JsonGrammar over output bytes. A thread is a stack of frames,
// one per open JSON value; anyOf forks threads, and the matcher keeps every thread still alive,
// so its state is a small set of stacks. Bytes only ever come from sampled tokens, so the state
// depends on the output alone (preemption and prefix hits leave it as it was).
//
// Bounded output: no whitespace anywhere (a `spaced` grammar: exactly Python's ", " and ": "),
// numbers with at most 15 integer digits, 15 fraction digits and 2 exponent digits (integers:
// within int64 and the schema's bounds), nesting of at most kMaxNesting values; strings and arrays
// end where the schema bounds them, and otherwise whenever the model closes them.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "model/grammar/json_grammar.h"

namespace v4 {

// One open value: the node it matches and how far it got (meaning depends on the node kind).
struct GrammarFrame {
  int32_t node = 0;
  uint8_t phase = 0;
  uint8_t sub = 0;     // string body substate (StringBodyState) or number state
  uint32_t count = 0;  // characters, items, digits, next property, literal offset
  uint64_t bits = 0;   // object: candidate keys; literals: range; integer: magnitude
  bool operator==(const GrammarFrame&) const = default;
  auto operator<=>(const GrammarFrame&) const = default;
};

using GrammarThread = std::vector<GrammarFrame>;  // back() is the innermost open value

// Inside a string's body: 0 plain; 1 after a backslash; 2..6 inside \uXXXX; 10..16 inside a
// multi-byte UTF-8 character (which continuation bytes may come). kStringBodyStates bounds them.
inline constexpr uint8_t kStringBodyStates = 17;
enum class StringByte : uint8_t { kStay, kClose, kReject };
// One byte of a string body from `sub`; `new_char` is set when the byte starts a character
// (JSON Schema lengths count characters). Shared by the matcher and the token-mask tables.
StringByte string_body_step(uint8_t& sub, uint8_t byte, bool& new_char);

// The string frame at the top of `thread`, in its body, or nullptr.
const GrammarFrame* open_string_body(const JsonGrammar& grammar, const GrammarThread& thread);
// The node at `index`; negative indices are the free-JSON nodes every grammar shares.
const GrammarNode& grammar_node(const JsonGrammar& grammar, int32_t index);

// Feeds `byte` to `thread`; appends each surviving successor (several when an anyOf opens).
void advance_thread(const JsonGrammar& grammar, GrammarThread thread, uint8_t byte,
                    std::vector<GrammarThread>& out);
// The thread's output so far is a whole value: done, or a number/literal that may stop here.
bool thread_accepting(const JsonGrammar& grammar, const GrammarThread& thread);
// The root value's first frames (forked by anyOf).
std::vector<GrammarThread> start_threads(const JsonGrammar& grammar);

class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<const JsonGrammar> grammar);

  // Feeds bytes; false (and no change) when some byte is not allowed.
  bool advance(std::string_view bytes);
  // The output so far is a complete value (the end token may come).
  bool accepting() const;
  // Nothing may follow: only the end token.
  bool complete() const;
  const std::vector<GrammarThread>& threads() const { return threads_; }
  const JsonGrammar& grammar() const { return *grammar_; }

 private:
  std::shared_ptr<const JsonGrammar> grammar_;
  std::vector<GrammarThread> threads_;
};

// Whether the whole of `text` is an output the grammar admits (tests and validation).
bool grammar_accepts(const JsonGrammar& grammar, std::string_view text);

}  // namespace v4
