// The served model's vocabulary as bytes for structured-output masks (worker/token_vocabulary.h),
// from the GGUF's tokenizer: `serve` and `worker` give it to the engine.
#pragma once

#include <memory>

#include "core/status.h"
#include "model/gguf/gguf_reader.h"
#include "model/text/tokenizer.h"
#include "worker/token_vocabulary.h"

namespace v4::apps {

// Normal and byte tokens are text; control and user-defined tokens never appear in JSON.
std::shared_ptr<const TokenVocabulary> token_vocabulary(const Tokenizer& tokenizer);
Result<std::shared_ptr<const TokenVocabulary>> token_vocabulary(const GgufFile& file);

}  // namespace v4::apps
