// Tokenizer::from_gguf: reads the tokenizer.ggml.* keys written by llama.cpp's converter
// (spec §5.3). Kept apart from tokenizer.cpp so code that builds a tokenizer from vectors does
// not pull in the GGUF reader.
#include "model/gguf/gguf_reader.h"
#include "model/text/tokenizer.h"

namespace v4 {

Result<Tokenizer> Tokenizer::from_gguf(const GgufFile& file) {
  const std::string name = file.paths().empty() ? "gguf" : file.paths().front();
  if (file.find("tokenizer.ggml.model") != nullptr) {
    Result<std::string> model = file.get_string("tokenizer.ggml.model");
    if (!model) return model.status();
    if (*model != "gpt2") {
      return Status::error(name + ": tokenizer.ggml.model is \"" + *model +
                           "\", expected \"gpt2\" (byte-level BPE)");
    }
  }
  TokenizerVocab vocab;
  Result<std::vector<std::string>> tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (!tokens) return tokens.status();
  vocab.tokens = std::move(*tokens);
  Result<std::vector<std::string>> merges = file.get_string_array("tokenizer.ggml.merges");
  if (!merges) return merges.status();
  vocab.merges = std::move(*merges);
  if (file.find("tokenizer.ggml.token_type") != nullptr) {
    Result<std::vector<int64_t>> types = file.get_int_array("tokenizer.ggml.token_type");
    if (!types) return types.status();
    vocab.token_types.reserve(types->size());
    for (int64_t t : *types) {
      if (t < 0 || t > static_cast<int64_t>(TokenType::kByte)) {
        return Status::error(name + ": tokenizer.ggml.token_type holds unknown type " +
                             std::to_string(t));
      }
      vocab.token_types.push_back(static_cast<int32_t>(t));
    }
  }
  for (auto [key, target] : {std::pair{"tokenizer.ggml.bos_token_id", &vocab.bos_id},
                             std::pair{"tokenizer.ggml.eos_token_id", &vocab.eos_id}}) {
    if (file.find(key) == nullptr) continue;
    Result<uint64_t> id = file.get_uint(key);
    if (!id) return id.status();
    if (*id > static_cast<uint64_t>(INT32_MAX)) {
      return Status::error(name + ": " + key + " = " + std::to_string(*id) + " is out of range");
    }
    *target = static_cast<TokenId>(*id);
  }
  Result<Tokenizer> tokenizer = Tokenizer::from_vocab(vocab);
  if (!tokenizer) return Status::error(name + ": " + tokenizer.message());
  return tokenizer;
}

}  // namespace v4
