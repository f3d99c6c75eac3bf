// `v4serve tokenize --model FILE`: text on stdin -> JSON array of token ids on stdout, with the
// tokenizer embedded in the GGUF file (spec §5.3).
//   --decode    the reverse: a JSON array of ids on stdin -> the bytes they stand for
//   --specials  honour control-token strings in the text (e.g. "<｜User｜>")
//   --jsonl     one document per line: a JSON string, or {"hex": "..."} for arbitrary bytes;
//               with --decode, one id array per line -> a JSON string (or {"hex"} when the
//               bytes are not UTF-8). Batches many documents into one process.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/command.h"
#include "model/gguf/gguf_reader.h"
#include "model/text/byte_level.h"
#include "model/text/tokenizer.h"

namespace v4::apps {
namespace {

struct TokenizeOptions {
  std::string model;
  bool decode = false;
  bool specials = false;
  bool jsonl = false;
};

int tokenize_failed(const std::string& message) {
  std::fprintf(stderr, "v4serve tokenize: %s\n", message.c_str());
  return 1;
}

bool is_utf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = utf8_sequence_length(text, pos);
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

std::string to_hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    out += digits[static_cast<uint8_t>(c) >> 4];
    out += digits[static_cast<uint8_t>(c) & 15];
  }
  return out;
}

Result<std::string> from_hex(const std::string& hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return Status::error("odd number of hex digits");
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int high = nibble(hex[i]), low = nibble(hex[i + 1]);
    if (high < 0 || low < 0) return Status::error("not a hex digit at " + std::to_string(i));
    out += static_cast<char>(high * 16 + low);
  }
  return out;
}

Result<std::vector<TokenId>> read_ids(const std::string& text, const Tokenizer& tokenizer) {
  nlohmann::json ids = nlohmann::json::parse(text, nullptr, false);
  if (ids.is_discarded() || !ids.is_array()) return Status::error("expected a JSON array of ids");
  std::vector<TokenId> out;
  for (const auto& id : ids) {
    if (!id.is_number_integer() || !tokenizer.is_valid(id.get<int64_t>())) {
      return Status::error("token id " + id.dump() + " is not in the vocabulary of " +
                           std::to_string(tokenizer.vocab_size()));
    }
    out.push_back(static_cast<TokenId>(id.get<int64_t>()));
  }
  return out;
}

Result<std::string> read_document(const std::string& line) {
  nlohmann::json doc = nlohmann::json::parse(line, nullptr, false);
  if (doc.is_string()) return doc.get<std::string>();
  if (doc.is_object() && doc.contains("hex") && doc["hex"].is_string()) {
    return from_hex(doc["hex"].get<std::string>());
  }
  return Status::error("expected a JSON string or {\"hex\": \"...\"}");
}

int run_jsonl(const TokenizeOptions& options, const Tokenizer& tokenizer) {
  std::string line;
  size_t line_number = 0;
  while (std::getline(std::cin, line)) {
    ++line_number;
    const std::string where = "stdin line " + std::to_string(line_number) + ": ";
    if (options.decode) {
      Result<std::vector<TokenId>> ids = read_ids(line, tokenizer);
      if (!ids) return tokenize_failed(where + ids.message());
      const std::string bytes = tokenizer.decode(*ids);
      const nlohmann::json out =
          is_utf8(bytes) ? nlohmann::json(bytes) : nlohmann::json{{"hex", to_hex(bytes)}};
      std::cout << out.dump() << '\n';
    } else {
      Result<std::string> text = read_document(line);
      if (!text) return tokenize_failed(where + text.message());
      std::cout << nlohmann::json(tokenizer.encode(*text, options.specials)).dump() << '\n';
    }
  }
  return 0;
}

int run_tokenize(const TokenizeOptions& options) {
  Result<GgufFile> file = GgufFile::open(options.model);
  if (!file) return tokenize_failed(file.message());
  Result<Tokenizer> tokenizer = Tokenizer::from_gguf(*file);
  if (!tokenizer) return tokenize_failed(tokenizer.message());
  if (options.jsonl) return run_jsonl(options, *tokenizer);
  const std::string input((std::istreambuf_iterator<char>(std::cin)),
                          std::istreambuf_iterator<char>());
  if (options.decode) {
    Result<std::vector<TokenId>> ids = read_ids(input, *tokenizer);
    if (!ids) return tokenize_failed("stdin: " + ids.message());
    const std::string bytes = tokenizer->decode(*ids);
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    return 0;
  }
  std::cout << nlohmann::json(tokenizer->encode(input, options.specials)).dump() << '\n';
  return 0;
}

const CommandRegistration kTokenizeCommand{
    "tokenize", "Text on stdin -> token ids (or back with --decode)", [](CLI::App& sub) {
      auto options = std::make_shared<TokenizeOptions>();
      sub.add_option("--model", options->model, "GGUF file whose tokenizer to use")->required();
      sub.add_flag("--decode", options->decode, "JSON array of ids on stdin -> bytes");
      sub.add_flag("--specials", options->specials, "honour control-token strings in the text");
      sub.add_flag("--jsonl", options->jsonl, "one JSON document per line in and out");
      return [options] { return run_tokenize(*options); };
    }};

}  // namespace
}  // namespace v4::apps
