#include "model/grammar/regex_grammar.h"

#include <bitset>
#include <cctype>
#include <cstring>
#include <string>
#include <vector>

namespace v4 {
namespace {

constexpr size_t kMaxStates = 64;
constexpr int kUnbounded = -1;

// The parsed pattern: byte sets, concatenations, alternatives and repetitions.
struct RegexAst {
  enum class Kind { kBytes, kConcat, kAlt, kRepeat };
  Kind kind = Kind::kConcat;
  std::bitset<256> bytes;
  std::vector<int> children;
  int min = 0, max = 0;
};

std::bitset<256> byte_range(int lo, int hi) {
  std::bitset<256> set;
  for (int b = lo; b <= hi; ++b) set.set(static_cast<size_t>(b));
  return set;
}

// What negations and '.' range over: printable ASCII and the usual whitespace, so that every
// output stays valid UTF-8.
std::bitset<256> ascii_text() { return byte_range(0x20, 0x7E) | byte_range('\t', '\r'); }

class RegexParser {
 public:
  explicit RegexParser(std::string_view pattern) : text_(pattern) {}

  Result<int> parse() {
    if (!text_.empty() && text_.front() == '^') ++pos_;
    Result<int> root = alternation();
    if (!root) return root;
    if (pos_ < text_.size() && text_[pos_] == '$' && pos_ + 1 == text_.size()) ++pos_;
    if (pos_ != text_.size()) return error("unexpected '" + std::string(1, text_[pos_]) + "'");
    return root;
  }
  std::vector<RegexAst> nodes;

 private:
  Status error(const std::string& what) const {
    return Status::error("regex: " + what + " at offset " + std::to_string(pos_));
  }
  int add(RegexAst node) {
    nodes.push_back(std::move(node));
    return static_cast<int>(nodes.size() - 1);
  }
  bool at(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  Result<int> alternation() {
    RegexAst alt;
    alt.kind = RegexAst::Kind::kAlt;
    do {
      Result<int> branch = concatenation();
      if (!branch) return branch;
      alt.children.push_back(*branch);
    } while (at('|') && ++pos_);
    return alt.children.size() == 1 ? alt.children[0] : add(std::move(alt));
  }

  Result<int> concatenation() {
    RegexAst concat;
    while (pos_ < text_.size() && !at('|') && !at(')')) {
      if (at('$') && pos_ + 1 == text_.size()) break;
      Result<int> item = repetition();
      if (!item) return item;
      concat.children.push_back(*item);
    }
    return add(std::move(concat));
  }

  Result<int> repetition() {
    Result<int> atom_index = atom();
    if (!atom_index) return atom_index;
    int current = *atom_index;
    while (pos_ < text_.size()) {
      int min = 0, max = kUnbounded;
      const char c = text_[pos_];
      if (c == '*') {
        ++pos_;
      } else if (c == '+') {
        min = 1, ++pos_;
      } else if (c == '?') {
        max = 1, ++pos_;
      } else if (c == '{') {
        if (auto s = counted(min, max); !s) return s;
      } else {
        break;
      }
      if (at('?') || at('+')) return error("lazy and possessive quantifiers are not supported");
      RegexAst repeat;
      repeat.kind = RegexAst::Kind::kRepeat;
      repeat.children = {current};
      repeat.min = min;
      repeat.max = max;
      current = add(std::move(repeat));
    }
    return current;
  }

  Status counted(int& min, int& max) {
    const size_t start = pos_++;
    auto number = [&](int& out) {
      if (pos_ >= text_.size() || !std::isdigit(static_cast<unsigned char>(text_[pos_])))
        return false;
      out = 0;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_])))
        out = std::min(out * 10 + (text_[pos_++] - '0'), 1000);
      return true;
    };
    if (!number(min)) return error("a count in {} must be a number");
    max = min;
    if (at(',')) {
      ++pos_;
      max = kUnbounded;
      if (!at('}') && !number(max)) return error("a count in {} must be a number");
    }
    if (!at('}')) return error("unclosed '{' opened at offset " + std::to_string(start));
    ++pos_;
    if (max != kUnbounded && max < min) return error("{m,n} needs m <= n");
    return Status::ok();
  }

  Result<int> atom() {
    const char c = text_[pos_];
    RegexAst bytes;
    bytes.kind = RegexAst::Kind::kBytes;
    if (c == '(') {
      ++pos_;
      if (at('?')) {
        if (pos_ + 1 < text_.size() && text_[pos_ + 1] == ':') {
          pos_ += 2;
        } else {
          return error("lookarounds and named groups are not supported");
        }
      }
      Result<int> inner = alternation();
      if (!inner) return inner;
      if (!at(')')) return error("unclosed '('");
      ++pos_;
      return inner;
    }
    if (c == '[') return byte_class();
    if (c == '*' || c == '+' || c == '?' || c == '{') return error("nothing to repeat");
    ++pos_;
    if (c == '.') {
      bytes.bytes = byte_range(0x20, 0x7E);
    } else if (c == '\\') {
      if (auto s = escape(bytes.bytes); !s) return s;
    } else {
      bytes.bytes.set(static_cast<unsigned char>(c));
    }
    return add(std::move(bytes));
  }

  Status escape(std::bitset<256>& set) {
    if (pos_ >= text_.size()) return error("a pattern cannot end with '\\\\'");
    const char c = text_[pos_++];
    const std::bitset<256> digit = byte_range('0', '9');
    const std::bitset<256> word =
        digit | byte_range('a', 'z') | byte_range('A', 'Z') | byte_range('_', '_');
    const std::bitset<256> space = byte_range(' ', ' ') | byte_range('\t', '\r');
    switch (c) {
      case 'd':
        set |= digit;
        break;
      case 'w':
        set |= word;
        break;
      case 's':
        set |= space;
        break;
      case 'D':
        set |= ascii_text() & ~digit;
        break;
      case 'W':
        set |= ascii_text() & ~word;
        break;
      case 'S':
        set |= ascii_text() & ~space;
        break;
      case 'n':
        set.set('\n');
        break;
      case 't':
        set.set('\t');
        break;
      case 'r':
        set.set('\r');
        break;
      default:
        if (std::isalnum(static_cast<unsigned char>(c)))
          return error(std::string("the escape \\") + c + " is not supported");
        set.set(static_cast<unsigned char>(c));
    }
    return Status::ok();
  }

  Result<int> byte_class() {
    const size_t start = pos_++;
    const bool negated = at('^') && ++pos_;
    RegexAst node;
    node.kind = RegexAst::Kind::kBytes;
    bool first = true;
    while (pos_ < text_.size() && (!at(']') || first)) {
      first = false;
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c >= 0x80) return error("non-ASCII characters in a class are not supported");
      if (c == '\\') {
        ++pos_;
        if (auto s = escape(node.bytes); !s) return s;
        continue;
      }
      ++pos_;
      if (at('-') && pos_ + 1 < text_.size() && text_[pos_ + 1] != ']') {
        const auto hi = static_cast<unsigned char>(text_[pos_ + 1]);
        if (hi < c || hi >= 0x80) return error("bad class range");
        node.bytes |= byte_range(c, hi);
        pos_ += 2;
      } else {
        node.bytes.set(c);
      }
    }
    if (!at(']')) return error("unclosed '[' opened at offset " + std::to_string(start));
    ++pos_;
    if (negated) node.bytes = ascii_text() & ~node.bytes;
    return add(std::move(node));
  }

  std::string_view text_;
  size_t pos_ = 0;
};

// Thompson's construction over the AST, each part emitted from a given state (no entry state
// of its own). That is sound because no part ever adds an edge into the state it starts from:
// loops get a fresh state. Alternatives then share their start, which halves the state count.
class NfaBuilder {
 public:
  explicit NfaBuilder(const std::vector<RegexAst>& ast) : ast_(ast) {}

  Status build(int root, GrammarNode& node) {
    Result<int> start = state();
    if (!start) return start.status();
    Result<int> end = emit(root, *start);
    if (!end) return end.status();
    node.kind = GrammarNodeKind::kRegex;
    node.regex_edges = edges_;
    node.regex_closure.assign(epsilon_.size(), 0);
    for (size_t s = 0; s < epsilon_.size(); ++s) node.regex_closure[s] = closure(s);
    node.regex_start = node.regex_closure[static_cast<size_t>(*start)];
    node.regex_accept = uint64_t{1} << *end;
    return Status::ok();
  }

 private:
  Result<int> state() {
    if (epsilon_.size() >= kMaxStates)
      return Status::error("regex: the pattern needs more than 64 automaton states");
    epsilon_.emplace_back();
    return static_cast<int>(epsilon_.size() - 1);
  }
  void link(int from, int to) { epsilon_[static_cast<size_t>(from)].push_back(to); }

  void byte_edges(const std::bitset<256>& bytes, int from, int to) {
    for (int b = 0; b < 256;) {
      if (!bytes.test(static_cast<size_t>(b))) {
        ++b;
        continue;
      }
      int hi = b;
      while (hi + 1 < 256 && bytes.test(static_cast<size_t>(hi + 1))) ++hi;
      edges_.push_back({static_cast<uint8_t>(from), static_cast<uint8_t>(b),
                        static_cast<uint8_t>(hi), static_cast<uint8_t>(to)});
      b = hi + 1;
    }
  }

  // Emits node `index` starting at state `from`; returns the state it ends in.
  Result<int> emit(int index, int from) {
    const RegexAst& n = ast_[static_cast<size_t>(index)];
    switch (n.kind) {
      case RegexAst::Kind::kBytes: {
        Result<int> next = state();
        if (next) byte_edges(n.bytes, from, *next);
        return next;
      }
      case RegexAst::Kind::kConcat: {
        int end = from;
        for (int child : n.children) {
          Result<int> next = emit(child, end);
          if (!next) return next;
          end = *next;
        }
        return end;
      }
      case RegexAst::Kind::kAlt: {
        Result<int> exit = state();
        if (!exit) return exit;
        for (int child : n.children) {
          Result<int> end = emit(child, from);
          if (!end) return end;
          link(*end, *exit);
        }
        return exit;
      }
      case RegexAst::Kind::kRepeat:
        break;
    }
    return emit_repeat(n, from);
  }

  Result<int> emit_repeat(const RegexAst& n, int from) {
    int end = from;
    for (int i = 0; i < n.min; ++i) {  // the required copies
      Result<int> next = emit(n.children[0], end);
      if (!next) return next;
      end = *next;
    }
    if (n.max == kUnbounded) {  // then a loop through a fresh state
      Result<int> loop = state();
      if (!loop) return loop;
      link(end, *loop);
      Result<int> body = emit(n.children[0], *loop);
      if (!body) return body;
      link(*body, *loop);
      return loop;
    }
    Result<int> exit = state();
    if (!exit) return exit;
    for (int i = n.min; i < n.max; ++i) {  // then optional copies, each skippable
      link(end, *exit);
      Result<int> next = emit(n.children[0], end);
      if (!next) return next;
      end = *next;
    }
    link(end, *exit);
    return exit;
  }

  uint64_t closure(size_t from) const {
    uint64_t seen = uint64_t{1} << from;
    std::vector<size_t> stack{from};
    while (!stack.empty()) {
      const size_t s = stack.back();
      stack.pop_back();
      for (int to : epsilon_[s]) {
        if (seen >> to & 1) continue;
        seen |= uint64_t{1} << to;
        stack.push_back(static_cast<size_t>(to));
      }
    }
    return seen;
  }

  const std::vector<RegexAst>& ast_;
  std::vector<std::vector<int>> epsilon_;
  std::vector<GrammarNode::RegexEdge> edges_;
};

}  // namespace

Result<JsonGrammar> compile_regex(std::string_view pattern) {
  RegexParser parser(pattern);
  Result<int> root = parser.parse();
  if (!root) return root.status();
  JsonGrammar grammar;
  grammar.nodes.emplace_back();
  NfaBuilder builder(parser.nodes);
  if (Status s = builder.build(*root, grammar.nodes[0]); !s) return s;
  grammar.root = 0;
  return grammar;
}

}  // namespace v4
