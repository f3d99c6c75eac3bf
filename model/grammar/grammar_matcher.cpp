#include "model/grammar/grammar_matcher.h"

#include <algorithm>

namespace v4 {
namespace {

// Nodes of free JSON (json_object, schemas without a type), shared by every grammar.
constexpr int32_t kAnyValueNode = -1;
constexpr int32_t kFreeObjectNode = -2;
constexpr int32_t kFreeArrayNode = -3;
constexpr int32_t kFreeStringNode = -4;
constexpr int32_t kFreeNumberNode = -5;
constexpr int32_t kFreeLiteralsNode = -6;

constexpr uint32_t kMaxIntegerDigits = 15;
constexpr uint32_t kMaxFractionDigits = 15;
constexpr uint32_t kMaxExponentDigits = 2;

const std::vector<GrammarNode>& free_nodes() {
  static const std::vector<GrammarNode> nodes = [] {
    std::vector<GrammarNode> n(6);
    n[1].kind = GrammarNodeKind::kObject;
    n[1].free_object = true;
    n[2].kind = GrammarNodeKind::kArray;
    n[3].kind = GrammarNodeKind::kString;
    n[4].kind = GrammarNodeKind::kNumber;
    n[5].kind = GrammarNodeKind::kLiterals;
    n[5].literals = {"false", "null", "true"};
    return n;
  }();
  return nodes;
}

enum class Action { kConsumed, kReject, kPop, kPopConsumed, kPush };

// Which node a kPush opens (set by the frame step beside the action).
struct StepResult {
  Action action;
  int32_t child = kAnyValueNode;
};

bool is_digit(uint8_t b) { return b >= '0' && b <= '9'; }
bool is_hex(uint8_t b) { return is_digit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F'); }

// Some integer whose decimal magnitude starts with `magnitude` (extended by k >= 0 more
// digits) lies within [lo, hi].
bool integer_reachable(bool negative, uint64_t magnitude, int64_t lo, int64_t hi) {
  __int128 scale = 1;
  for (int k = 0; k <= 19; ++k, scale *= 10) {
    const __int128 base = static_cast<__int128>(magnitude) * scale;
    if (base > (static_cast<__int128>(1) << 64)) break;
    const __int128 top = base + scale - 1;
    if (!negative && base <= hi && top >= lo) return true;
    if (negative && -top <= hi && -base >= lo) return true;
    if (magnitude == 0) break;  // a leading zero takes no more digits
  }
  return false;
}

bool integer_in_bounds(const GrammarNode& node, bool negative, uint64_t magnitude) {
  const __int128 value = negative ? -static_cast<__int128>(magnitude) : magnitude;
  return value >= node.minimum && value <= node.maximum;
}

// Object key candidates from property `next`: the optional ones up to and including the next
// required one (properties come in schema order).
uint64_t key_candidates(const GrammarNode& node, uint32_t next) {
  uint64_t mask = 0;
  for (size_t i = next; i < node.properties.size(); ++i) {
    mask |= uint64_t{1} << i;
    if (node.properties[i].required) break;
  }
  return mask;
}

bool required_left(const GrammarNode& node, uint32_t next) {
  for (size_t i = next; i < node.properties.size(); ++i)
    if (node.properties[i].required) return true;
  return false;
}

// Phases 8 and 9 of objects (4 of arrays) take the space of a spaced grammar's separators.
constexpr uint8_t kSpaceBeforeValue = 8;
constexpr uint8_t kSpaceBeforeKey = 9;

StepResult step_space(GrammarFrame& f, uint8_t b, uint8_t next) {
  if (b != ' ') return {Action::kReject};
  f.phase = next;
  return {Action::kConsumed};
}

StepResult step_schema_object(const GrammarNode& node, GrammarFrame& f, uint8_t b, bool spaced) {
  switch (f.phase) {
    case 0:
      if (b != '{') return {Action::kReject};
      f.phase = 1;
      return {Action::kConsumed};
    case 1:
    case 2:
      if (b == '}' && f.phase == 1 && !required_left(node, f.count)) return {Action::kPopConsumed};
      if (b != '"' || key_candidates(node, f.count) == 0) return {Action::kReject};
      f.bits = key_candidates(node, f.count);
      f.phase = 3;
      f.sub = 0;  // key offset
      return {Action::kConsumed};
    case 3: {
      uint64_t kept = 0;
      for (uint64_t m = f.bits; m; m &= m - 1) {
        const int i = __builtin_ctzll(m);
        const std::string& key = node.properties[static_cast<size_t>(i)].key_text;
        if (f.sub < key.size() && static_cast<uint8_t>(key[f.sub]) == b) kept |= uint64_t{1} << i;
      }
      if (!kept) return {Action::kReject};
      f.bits = kept;
      ++f.sub;
      // Keys end with their closing quote, so a whole key is never a prefix of another.
      for (uint64_t m = kept; m; m &= m - 1) {
        const int i = __builtin_ctzll(m);
        if (node.properties[static_cast<size_t>(i)].key_text.size() == f.sub) {
          f.count = static_cast<uint32_t>(i) + 1;
          f.phase = 4;
        }
      }
      return {Action::kConsumed};
    }
    case 4:
      if (b != ':') return {Action::kReject};
      f.phase = spaced ? kSpaceBeforeValue : 5;
      return {Action::kConsumed};
    case 5:
      f.phase = 6;
      return {Action::kPush, node.properties[f.count - 1].value};
    case kSpaceBeforeValue:
      return step_space(f, b, 5);
    case kSpaceBeforeKey:
      return step_space(f, b, 2);
    default:
      if (b == ',' && key_candidates(node, f.count) != 0) {
        f.phase = spaced ? kSpaceBeforeKey : 2;
        return {Action::kConsumed};
      }
      if (b == '}' && !required_left(node, f.count)) return {Action::kPopConsumed};
      return {Action::kReject};
  }
}

StepResult step_free_object(GrammarFrame& f, uint8_t b, bool spaced) {
  switch (f.phase) {
    case 0:
      if (b != '{') return {Action::kReject};
      f.phase = 1;
      return {Action::kConsumed};
    case 1:
    case 2:
      if (b == '}' && f.phase == 1) return {Action::kPopConsumed};
      f.phase = 4;
      return {Action::kPush, kFreeStringNode};
    case 4:
      if (b != ':') return {Action::kReject};
      f.phase = spaced ? kSpaceBeforeValue : 5;
      return {Action::kConsumed};
    case 5:
      f.phase = 6;
      return {Action::kPush, kAnyValueNode};
    case kSpaceBeforeValue:
      return step_space(f, b, 5);
    case kSpaceBeforeKey:
      return step_space(f, b, 2);
    default:
      if (b == ',') {
        f.phase = spaced ? kSpaceBeforeKey : 2;
        return {Action::kConsumed};
      }
      if (b == '}') return {Action::kPopConsumed};
      return {Action::kReject};
  }
}

StepResult step_array(const GrammarNode& node, GrammarFrame& f, uint8_t b, bool spaced) {
  switch (f.phase) {
    case 0:
      if (b != '[') return {Action::kReject};
      f.phase = 1;
      return {Action::kConsumed};
    case 1:
      if (b == ']')
        return node.min_items == 0 ? StepResult{Action::kPopConsumed} : StepResult{Action::kReject};
      if (node.max_items == 0) return {Action::kReject};
      [[fallthrough]];
    case 2:
      ++f.count;
      f.phase = 3;
      return {Action::kPush, node.items};
    case 4:
      return step_space(f, b, 2);
    default:
      if (b == ',' && f.count < node.max_items) {
        f.phase = spaced ? 4 : 2;
        return {Action::kConsumed};
      }
      if (b == ']' && f.count >= node.min_items) return {Action::kPopConsumed};
      return {Action::kReject};
  }
}

StepResult step_string(const GrammarNode& node, GrammarFrame& f, uint8_t b) {
  if (f.phase == 0) {
    if (b != '"') return {Action::kReject};
    f.phase = 1;
    return {Action::kConsumed};
  }
  bool new_char = false;
  switch (string_body_step(f.sub, b, new_char)) {
    case StringByte::kReject:
      return {Action::kReject};
    case StringByte::kClose:
      return f.count >= node.min_length ? StepResult{Action::kPopConsumed}
                                        : StepResult{Action::kReject};
    case StringByte::kStay:
      break;
  }
  if (new_char && f.count++ >= node.max_length) return {Action::kReject};
  return {Action::kConsumed};
}

// phase: 0 start, 1 after '-', 2 digits, 3 a lone leading zero. count: digits; bits: magnitude;
// sub: 1 when negative.
StepResult step_integer(const GrammarNode& node, GrammarFrame& f, uint8_t b) {
  const bool negative = f.sub == 1;
  if (f.phase == 0 && b == '-') {
    if (node.minimum >= 0) return {Action::kReject};
    f.phase = 1;
    f.sub = 1;
    return {Action::kConsumed};
  }
  if (f.phase <= 1) {
    if (!is_digit(b) || (f.phase == 1 && b == '0')) return {Action::kReject};
    const uint64_t digit = b - '0';
    if (!integer_reachable(negative, digit, node.minimum, node.maximum)) return {Action::kReject};
    f.bits = digit;
    f.count = 1;
    f.phase = digit == 0 ? 3 : 2;
    return {Action::kConsumed};
  }
  if (is_digit(b) && f.phase == 2) {
    if (f.bits > (std::numeric_limits<uint64_t>::max() - 9) / 10) return {Action::kReject};
    const uint64_t next = f.bits * 10 + (b - '0');
    if (!integer_reachable(negative, next, node.minimum, node.maximum)) return {Action::kReject};
    f.bits = next;
    ++f.count;
    return {Action::kConsumed};
  }
  if (is_digit(b)) return {Action::kReject};
  return integer_in_bounds(node, negative, f.bits) ? StepResult{Action::kPop}
                                                   : StepResult{Action::kReject};
}

// JSON's number grammar. sub: 0 start, 1 after '-', 2 lone zero, 3 integer digits, 4 after
// '.', 5 fraction digits, 6 after 'e', 7 after the exponent sign, 8 exponent digits.
bool number_can_end(uint8_t sub) { return sub == 2 || sub == 3 || sub == 5 || sub == 8; }

StepResult step_number(GrammarFrame& f, uint8_t b) {
  auto go = [&](uint8_t sub, bool digit) {
    f.count = (sub == f.sub && digit) ? f.count + 1 : (digit ? 1 : 0);
    f.sub = sub;
    return StepResult{Action::kConsumed};
  };
  const bool digit = is_digit(b);
  switch (f.sub) {
    case 0:
      if (b == '-') return go(1, false);
      [[fallthrough]];
    case 1:
      if (b == '0') return go(2, true);
      if (digit) return go(3, true);
      return {Action::kReject};
    case 2:
    case 3:
      if (digit && f.sub == 3 && f.count < kMaxIntegerDigits) return go(3, true);
      if (b == '.') return go(4, false);
      if (b == 'e' || b == 'E') return go(6, false);
      break;
    case 4:
      return digit ? go(5, true) : StepResult{Action::kReject};
    case 5:
      if (digit && f.count < kMaxFractionDigits) return go(5, true);
      if (b == 'e' || b == 'E') return go(6, false);
      break;
    case 6:
      if (b == '+' || b == '-') return go(7, false);
      [[fallthrough]];
    case 7:
      return digit ? go(8, true) : StepResult{Action::kReject};
    default:
      if (digit && f.count < kMaxExponentDigits) return go(8, true);
      break;
  }
  if (digit) return {Action::kReject};
  return number_can_end(f.sub) ? StepResult{Action::kPop} : StepResult{Action::kReject};
}

// bits: the live range [lo, hi) of the sorted literals; count: bytes matched.
StepResult step_literals(const GrammarNode& node, GrammarFrame& f, uint8_t b) {
  uint32_t lo = static_cast<uint32_t>(f.bits), hi = static_cast<uint32_t>(f.bits >> 32);
  uint32_t new_lo = hi, new_hi = hi;
  for (uint32_t i = lo; i < hi; ++i) {
    const std::string& text = node.literals[i];
    if (text.size() > f.count && static_cast<uint8_t>(text[f.count]) == b) {
      new_lo = std::min(new_lo, i);
      new_hi = i + 1;
    }
  }
  if (new_lo == new_hi) {
    // The shortest live literal sorts first; it may end here and leave the byte to the parent.
    return node.literals[lo].size() == f.count ? StepResult{Action::kPop}
                                               : StepResult{Action::kReject};
  }
  ++f.count;
  f.bits = new_lo | (uint64_t{new_hi} << 32);
  if (new_hi - new_lo == 1 && node.literals[new_lo].size() == f.count)
    return {Action::kPopConsumed};
  return {Action::kConsumed};
}

// bits: the live NFA states. A byte no live state takes ends the match (if it may end there)
// and goes to the parent; a match nothing may extend ends at once.
StepResult step_regex(const GrammarNode& node, GrammarFrame& f, uint8_t b) {
  uint64_t next = 0;
  for (const GrammarNode::RegexEdge& e : node.regex_edges)
    if ((f.bits >> e.state & 1) && b >= e.lo && b <= e.hi) next |= node.regex_closure[e.next];
  if (!next)
    return (f.bits & node.regex_accept) ? StepResult{Action::kPop} : StepResult{Action::kReject};
  f.bits = next;
  for (const GrammarNode::RegexEdge& e : node.regex_edges)
    if (next >> e.state & 1) return {Action::kConsumed};
  return {Action::kPopConsumed};
}

// The concrete free node a first byte of any JSON value opens.
int32_t free_node_for(uint8_t b) {
  if (b == '{') return kFreeObjectNode;
  if (b == '[') return kFreeArrayNode;
  if (b == '"') return kFreeStringNode;
  if (b == '-' || is_digit(b)) return kFreeNumberNode;
  if (b == 't' || b == 'f' || b == 'n') return kFreeLiteralsNode;
  return 0;
}

GrammarFrame fresh_frame(const JsonGrammar& grammar, int32_t index) {
  GrammarFrame f;
  f.node = index;
  const GrammarNode& node = grammar_node(grammar, index);
  if (node.kind == GrammarNodeKind::kLiterals)
    f.bits = uint64_t{static_cast<uint32_t>(node.literals.size())} << 32;
  if (node.kind == GrammarNodeKind::kRegex) f.bits = node.regex_start;
  return f;
}

// Opens `index` on top of `thread`, one copy per concrete alternative of nested anyOfs.
void open_node(const JsonGrammar& grammar, const GrammarThread& thread, int32_t index,
               std::vector<GrammarThread>& out) {
  const GrammarNode& node = grammar_node(grammar, index);
  if (node.kind == GrammarNodeKind::kAnyOf) {
    for (int32_t alternative : node.alternatives) open_node(grammar, thread, alternative, out);
    return;
  }
  if (thread.size() >= kMaxNesting) return;
  out.push_back(thread);
  out.back().push_back(fresh_frame(grammar, index));
}

StepResult step_frame(const JsonGrammar& grammar, GrammarFrame& f, uint8_t b) {
  const GrammarNode& node = grammar_node(grammar, f.node);
  switch (node.kind) {
    case GrammarNodeKind::kObject:
      return node.free_object ? step_free_object(f, b, grammar.spaced)
                              : step_schema_object(node, f, b, grammar.spaced);
    case GrammarNodeKind::kArray:
      return step_array(node, f, b, grammar.spaced);
    case GrammarNodeKind::kString:
      return step_string(node, f, b);
    case GrammarNodeKind::kInteger:
      return step_integer(node, f, b);
    case GrammarNodeKind::kNumber:
      return step_number(f, b);
    case GrammarNodeKind::kLiterals:
      return step_literals(node, f, b);
    case GrammarNodeKind::kRegex:
      return step_regex(node, f, b);
    case GrammarNodeKind::kAnyValue: {
      const int32_t concrete = free_node_for(b);
      if (concrete == 0) return {Action::kReject};
      f = fresh_frame(grammar, concrete);
      return step_frame(grammar, f, b);
    }
    case GrammarNodeKind::kAnyOf:
      break;  // expanded by open_node, never on a stack
  }
  return {Action::kReject};
}

}  // namespace

StringByte string_body_step(uint8_t& sub, uint8_t b, bool& new_char) {
  new_char = false;
  auto cont = [&](uint8_t lo, uint8_t hi, uint8_t next) {
    if (b < lo || b > hi) return StringByte::kReject;
    sub = next;
    return StringByte::kStay;
  };
  switch (sub) {
    case 0:
      if (b == '"') return StringByte::kClose;
      if (b < 0x20) return StringByte::kReject;
      new_char = true;
      if (b == '\\')
        sub = 1;
      else if (b < 0x80)
        sub = 0;
      else if (b >= 0xC2 && b <= 0xDF)
        sub = 10;
      else if (b == 0xE0)
        sub = 13;
      else if (b == 0xED)
        sub = 14;
      else if (b >= 0xE1 && b <= 0xEF)
        sub = 11;
      else if (b == 0xF0)
        sub = 15;
      else if (b >= 0xF1 && b <= 0xF3)
        sub = 12;
      else if (b == 0xF4)
        sub = 16;
      else
        return StringByte::kReject;
      return StringByte::kStay;
    case 1:
      if (b == 'u') {
        sub = 2;
        return StringByte::kStay;
      }
      if (b != '"' && b != '\\' && b != '/' && b != 'b' && b != 'f' && b != 'n' && b != 'r' &&
          b != 't')
        return StringByte::kReject;
      sub = 0;
      return StringByte::kStay;
    case 2:  // first hex digit; a 'd' may open a surrogate, which \u escapes may not spell
      if (!is_hex(b)) return StringByte::kReject;
      sub = (b == 'd' || b == 'D') ? 6 : 3;
      return StringByte::kStay;
    case 6:
      return cont('0', '7', 4);
    case 3:
    case 4:
    case 5:
      if (!is_hex(b)) return StringByte::kReject;
      sub = sub == 5 ? 0 : sub + 1;
      return StringByte::kStay;
    case 10:
      return cont(0x80, 0xBF, 0);
    case 11:
      return cont(0x80, 0xBF, 10);
    case 12:
      return cont(0x80, 0xBF, 11);
    case 13:
      return cont(0xA0, 0xBF, 10);
    case 14:
      return cont(0x80, 0x9F, 10);
    case 15:
      return cont(0x90, 0xBF, 11);
    case 16:
      return cont(0x80, 0x8F, 11);
    default:
      return StringByte::kReject;
  }
}

const GrammarNode& grammar_node(const JsonGrammar& grammar, int32_t index) {
  if (index < 0) return free_nodes()[static_cast<size_t>(-index - 1)];
  return grammar.nodes[static_cast<size_t>(index)];
}

const GrammarFrame* open_string_body(const JsonGrammar& grammar, const GrammarThread& thread) {
  if (thread.empty()) return nullptr;
  const GrammarFrame& top = thread.back();
  const GrammarNode& node = grammar_node(grammar, top.node);
  return node.kind == GrammarNodeKind::kString && top.phase == 1 ? &top : nullptr;
}

void advance_thread(const JsonGrammar& grammar, GrammarThread thread, uint8_t byte,
                    std::vector<GrammarThread>& out) {
  while (!thread.empty()) {
    const StepResult r = step_frame(grammar, thread.back(), byte);
    switch (r.action) {
      case Action::kReject:
        return;
      case Action::kConsumed:
        out.push_back(std::move(thread));
        return;
      case Action::kPopConsumed:
        thread.pop_back();
        out.push_back(std::move(thread));
        return;
      case Action::kPop:
        thread.pop_back();
        continue;
      case Action::kPush: {
        std::vector<GrammarThread> opened;
        open_node(grammar, thread, r.child, opened);
        for (GrammarThread& t : opened) advance_thread(grammar, std::move(t), byte, out);
        return;
      }
    }
  }
}

bool thread_accepting(const JsonGrammar& grammar, const GrammarThread& thread) {
  if (thread.empty()) return true;
  if (thread.size() > 1) return false;
  const GrammarFrame& f = thread.back();
  const GrammarNode& node = grammar_node(grammar, f.node);
  switch (node.kind) {
    case GrammarNodeKind::kNumber:
      return number_can_end(f.sub);
    case GrammarNodeKind::kInteger:
      return f.phase == 3 || (f.phase == 2 && integer_in_bounds(node, f.sub == 1, f.bits));
    case GrammarNodeKind::kLiterals:
      return f.count > 0 && node.literals[static_cast<uint32_t>(f.bits)].size() == f.count;
    case GrammarNodeKind::kRegex:
      return (f.bits & node.regex_accept) != 0;
    default:
      return false;
  }
}

std::vector<GrammarThread> start_threads(const JsonGrammar& grammar) {
  std::vector<GrammarThread> threads;
  open_node(grammar, {}, grammar.root, threads);
  return threads;
}

GrammarMatcher::GrammarMatcher(std::shared_ptr<const JsonGrammar> grammar)
    : grammar_(std::move(grammar)), threads_(start_threads(*grammar_)) {}

bool GrammarMatcher::advance(std::string_view bytes) {
  std::vector<GrammarThread> current = threads_, next;
  for (char c : bytes) {
    next.clear();
    for (GrammarThread& t : current)
      advance_thread(*grammar_, std::move(t), static_cast<uint8_t>(c), next);
    if (next.empty()) return false;
    // Alternatives that reached the same state are one thread from here on.
    std::sort(next.begin(), next.end());
    next.erase(std::unique(next.begin(), next.end()), next.end());
    std::swap(current, next);
  }
  threads_ = std::move(current);
  return true;
}

bool GrammarMatcher::accepting() const {
  return std::any_of(threads_.begin(), threads_.end(),
                     [&](const GrammarThread& t) { return thread_accepting(*grammar_, t); });
}

bool GrammarMatcher::complete() const {
  return std::all_of(threads_.begin(), threads_.end(),
                     [](const GrammarThread& t) { return t.empty(); });
}

bool grammar_accepts(const JsonGrammar& grammar, std::string_view text) {
  GrammarMatcher matcher(std::make_shared<const JsonGrammar>(grammar));
  return matcher.advance(text) && matcher.accepting();
}

}  // namespace v4
