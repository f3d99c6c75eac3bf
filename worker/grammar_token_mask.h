// Which tokens a structured-output request may sample next: a token is allowed when the grammar
// can consume all of its bytes from the current state (model/grammar/grammar_matcher.h). The
// end token is the caller's business (allowed when the matcher is accepting).
#pragma once

#include <cstdint>
#include <vector>

#include "model/grammar/grammar_matcher.h"
#include "worker/token_vocabulary.h"

namespace v4 {

// Sets in `bits` (TokenVocabulary::words() words, cleared first) the ids of the tokens `matcher`
// can consume whole.
void allowed_token_bits(const GrammarMatcher& matcher, const TokenVocabulary& vocabulary,
                        std::vector<uint64_t>& bits);

// Reference for tests: every token checked on its own against a copy of the matcher.
void allowed_token_bits_by_scan(const GrammarMatcher& matcher, const TokenVocabulary& vocabulary,
                                std::vector<uint64_t>& bits);

}  // namespace v4
