// vLLM's guided_regex: the whole output is text a regular expression matches. The pattern is
// compiled to a byte NFA of at most 64 states (one JsonGrammar node of kind kRegex), so a
// matcher state is a 64-bit set of NFA states.
//
// Syntax: literals (UTF-8 text included), escapes (\d \w \s and their negations, \. \\ \n \t
// and other escaped punctuation), classes [a-z0-9_] and [^...] over ASCII, '.' (printable
// ASCII), groups (...) and (?:...), alternation |, quantifiers * + ? {m} {m,} {m,n}, and ^ / $
// at the ends (the whole output always matches). Refused, with what was refused named:
// backreferences, lookarounds, lazy or possessive quantifiers, non-ASCII class members.
#pragma once

#include <string_view>

#include "core/status.h"
#include "model/grammar/json_grammar.h"

namespace v4 {

Result<JsonGrammar> compile_regex(std::string_view pattern);

}  // namespace v4
