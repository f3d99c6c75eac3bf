// Converts a Hugging Face tokenizer.json (byte-level BPE, as DeepSeek ships it) into the
// tokenizer.ggml.* metadata of a GGUF file, following llama.cpp's converter (spec §5.3):
// tokens by id (holes become "[PAD<id>]"), merges as "a b" strings, token types
// 1 normal / 3 control / 4 user-defined / 5 unused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace v4 {

class GgufWriter;

enum class GgufTokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6
};

struct GgufTokenizerData {
  std::vector<std::string> tokens;
  std::vector<int32_t> token_types;
  std::vector<std::string> merges;
  int64_t bos_id = -1;
  int64_t eos_id = -1;
  int64_t padding_id = -1;
  bool add_bos = false;
  bool add_eos = false;
};

// Reads `tokenizer_json` (and tokenizer_config.json beside it, when present, for BOS/EOS/PAD and
// add_bos/add_eos). `vocab_size` pads or bounds the token list as the model's embedding does.
Result<GgufTokenizerData> convert_hf_tokenizer(const std::string& tokenizer_json,
                                               uint32_t vocab_size);

// tokenizer.ggml.model = "gpt2", tokenizer.ggml.pre = "joyai-llm", tokens, token_type, merges,
// special ids.
void write_tokenizer_metadata(const GgufTokenizerData& data, GgufWriter& writer);

}  // namespace v4
