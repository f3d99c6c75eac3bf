// PCRE2 implementation of the pre-tokenizer (spec §5.3).
#include "model/text/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>

#include "model/text/byte_level.h"

namespace v4 {

const char* const kPretokenizerPatterns[3] = {
    R"(\p{N}{1,3})",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
};

namespace {

// HF tokenizers evaluates the patterns with Oniguruma, whose Unicode \s is U+0009..U+000D,
// U+0085 and the Z categories. PCRE2's \s (with UCP) also takes U+180E MONGOLIAN VOWEL SEPARATOR
// (Cf since Unicode 6.3), which would glue it into whitespace pieces; spell the Oniguruma class
// out so both engines agree.
std::string with_oniguruma_space_classes(std::string_view pattern) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[i + 1];
      if (next == 's' || next == 'S') {
        out += next == 's' ? R"([\t-\r\x{85}\p{Z}])" : R"([^\t-\r\x{85}\p{Z}])";
      } else {
        out += pattern.substr(i, 2);
      }
      ++i;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

struct CompiledPattern {
  pcre2_code* code = nullptr;
  bool jit = false;
};

}  // namespace

struct Pretokenizer::Impl {
  CompiledPattern patterns[3];

  ~Impl() {
    for (CompiledPattern& p : patterns) pcre2_code_free(p.code);
  }

  // Splits `subject` by one pattern, Isolated: matches and gaps both become pieces.
  void split_isolated(const CompiledPattern& pattern, pcre2_match_data* match,
                      std::string_view subject, std::vector<std::string_view>& out) const {
    const auto* base = reinterpret_cast<PCRE2_SPTR>(subject.data());
    size_t last = 0;
    size_t offset = 0;
    while (offset < subject.size()) {
      const int rc = pattern.jit ? pcre2_jit_match(pattern.code, base, subject.size(), offset, 0,
                                                   match, nullptr)
                                 : pcre2_match(pattern.code, base, subject.size(), offset,
                                               PCRE2_NO_UTF_CHECK, match, nullptr);
      if (rc < 0) break;  // no further match (or a resource limit: keep the rest whole)
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
      const size_t start = ovector[0];
      size_t end = ovector[1];
      if (end == start) {
        // None of the patterns matches empty; guard anyway by stepping one code point.
        size_t step = utf8_sequence_length(subject, start);
        offset = start + (step == 0 ? 1 : step);
        continue;
      }
      if (start > last) out.push_back(subject.substr(last, start - last));
      out.push_back(subject.substr(start, end - start));
      last = offset = end;
    }
    if (last < subject.size()) out.push_back(subject.substr(last));
  }
};

Result<Pretokenizer> Pretokenizer::create() {
  auto impl = std::make_shared<Impl>();
  for (int i = 0; i < 3; ++i) {
    const std::string pattern = with_oniguruma_space_classes(kPretokenizerPatterns[i]);
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP, &error, &error_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return Status::error("pre-tokenizer pattern " + std::to_string(i + 1) + ": " +
                           reinterpret_cast<const char*>(message) + " at offset " +
                           std::to_string(error_offset));
    }
    impl->patterns[i].code = code;
    // JIT is an optimisation only: fall back to the interpreter where it is unavailable.
    impl->patterns[i].jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  }
  return Pretokenizer(std::move(impl));
}

void Pretokenizer::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  struct MatchData {
    pcre2_match_data* data;
    explicit MatchData(const pcre2_code* code)
        : data(pcre2_match_data_create_from_pattern(code, nullptr)) {}
    ~MatchData() { pcre2_match_data_free(data); }
  };
  MatchData match[3] = {MatchData(impl_->patterns[0].code), MatchData(impl_->patterns[1].code),
                        MatchData(impl_->patterns[2].code)};
  std::vector<std::string_view> stage_a, stage_b;

  auto split_valid_run = [&](std::string_view run) {
    stage_a.clear();
    impl_->split_isolated(impl_->patterns[0], match[0].data, run, stage_a);
    stage_b.clear();
    for (std::string_view piece : stage_a) {
      impl_->split_isolated(impl_->patterns[1], match[1].data, piece, stage_b);
    }
    for (std::string_view piece : stage_b) {
      impl_->split_isolated(impl_->patterns[2], match[2].data, piece, pieces);
    }
  };

  size_t run_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t length = utf8_sequence_length(text, pos);
    if (length != 0) {
      pos += length;
      continue;
    }
    if (pos > run_start) split_valid_run(text.substr(run_start, pos - run_start));
    pieces.push_back(text.substr(pos, 1));
    run_start = ++pos;
  }
  if (pos > run_start) split_valid_run(text.substr(run_start, pos - run_start));
}

}  // namespace v4
