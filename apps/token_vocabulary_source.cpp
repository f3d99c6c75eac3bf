#include "apps/token_vocabulary_source.h"

#include <string>
#include <vector>

namespace v4::apps {

std::shared_ptr<const TokenVocabulary> token_vocabulary(const Tokenizer& tokenizer) {
  std::vector<std::string> bytes(tokenizer.vocab_size());
  std::vector<bool> text(tokenizer.vocab_size());
  for (size_t id = 0; id < bytes.size(); ++id) {
    const auto token = static_cast<TokenId>(id);
    bytes[id] = std::string(tokenizer.token_bytes(token));
    const TokenType type = tokenizer.token_type(token);
    text[id] = type == TokenType::kNormal || type == TokenType::kByte;
  }
  return std::make_shared<const TokenVocabulary>(std::move(bytes), text);
}

Result<std::shared_ptr<const TokenVocabulary>> token_vocabulary(const GgufFile& file) {
  Result<Tokenizer> tokenizer = Tokenizer::from_gguf(file);
  if (!tokenizer) return tokenizer.status();
  return token_vocabulary(*tokenizer);
}

}  // namespace v4::apps
