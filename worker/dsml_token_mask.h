// Which tokens a strict-tools request may sample next (model/grammar/dsml_tool_grammar.h, spec
// §5.8). The marker is a special token: its id is allowed exactly when the grammar allows the
// marker, never because of its text. The costly states reuse precomputed tables: inside a RAW
// value one bitset copy (TokenVocabulary::raw_text_bits), inside a JSON value the structured-
// output mask (worker/grammar_token_mask.h) plus the few tokens that may end the value; tags and
// names are a trie walk that the fixed text prunes at once. The end token is the caller's
// business (allowed when the matcher is accepting).
#pragma once

#include <cstdint>
#include <vector>

#include "model/grammar/dsml_tool_matcher.h"
#include "worker/token_vocabulary.h"

namespace v4 {

// Sets in `bits` (cleared first) the ids of the tokens `matcher` may take next. False, with
// `bits` untouched, while the output is free text (no mask: every token may come).
bool dsml_allowed_token_bits(const DsmlToolMatcher& matcher, const TokenVocabulary& vocabulary,
                             std::vector<uint64_t>& bits);

// Reference for tests: every token checked on its own against a copy of the matcher.
void dsml_allowed_token_bits_by_scan(const DsmlToolMatcher& matcher,
                                     const TokenVocabulary& vocabulary,
                                     std::vector<uint64_t>& bits);

}  // namespace v4
