#include "model/text/hf_tokenizer_conversion.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "model/gguf/gguf_writer.h"

namespace v4 {
namespace {

using nlohmann::json;

Result<json> load_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(path + ": cannot open");
  json doc = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::error(path + ": not valid JSON");
  return doc;
}

// llama.cpp's does_token_look_special: some models mark control-like added tokens as not
// special; DeepSeek's "<｜User｜>" family is one of them.
bool looks_special(const std::string& t) {
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  if (t.starts_with("<|") && t.ends_with("|>")) return true;
  if (t.starts_with("<\xEF\xBD\x9C") && t.ends_with("\xEF\xBD\x9C>")) return true;  // <｜ … ｜>
  return t.starts_with("<unused") && t.ends_with(">");
}

// User-defined tokens are stored pre-normalised: SentencePiece's "▁" becomes a space.
std::string replace_metaspace(std::string t) {
  const std::string metaspace = "\xE2\x96\x81";
  for (size_t pos = t.find(metaspace); pos != std::string::npos; pos = t.find(metaspace, pos)) {
    t.replace(pos, metaspace.size(), " ");
    pos += 1;
  }
  return t;
}

// The id of a special token named in tokenizer_config.json (a string or an AddedToken object).
int64_t config_token_id(const json& config, const char* field,
                        const std::unordered_map<std::string, int64_t>& ids) {
  if (!config.contains(field)) return -1;
  const json& v = config[field];
  std::string text = v.is_string() ? v.get<std::string>()
                     : v.is_object() && v.contains("content") && v["content"].is_string()
                         ? v["content"].get<std::string>()
                         : std::string();
  auto it = ids.find(text);
  return it == ids.end() ? -1 : it->second;
}

Status read_merges(const json& model, std::vector<std::string>& merges) {
  if (!model.contains("merges") || !model["merges"].is_array()) {
    return Status::error("tokenizer.json: model.merges is missing");
  }
  for (const json& m : model["merges"]) {
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    } else {
      return Status::error("tokenizer.json: a merge is neither \"a b\" nor [a, b]");
    }
  }
  return Status::ok();
}

}  // namespace

Result<GgufTokenizerData> convert_hf_tokenizer(const std::string& tokenizer_json,
                                               uint32_t vocab_size) {
  Result<json> doc = load_json(tokenizer_json);
  if (!doc) return doc.status();
  const json& model = (*doc)["model"];
  if (!model.is_object() || model.value("type", "") != "BPE" || !model["vocab"].is_object()) {
    return Status::error(tokenizer_json + ": not a BPE tokenizer (model.type must be BPE)");
  }
  std::vector<std::string> by_id(vocab_size);
  std::vector<int32_t> types(vocab_size, static_cast<int32_t>(GgufTokenType::kUnused));
  std::vector<bool> present(vocab_size, false);
  std::unordered_map<std::string, int64_t> ids;
  for (auto& [text, id_json] : model["vocab"].items()) {
    const int64_t id = id_json.get<int64_t>();
    ids[text] = id;
    if (id < 0 || id >= vocab_size) continue;
    by_id[id] = text;
    types[id] = static_cast<int32_t>(GgufTokenType::kNormal);
    present[id] = true;
  }
  for (const json& added : (*doc)["added_tokens"]) {
    const int64_t id = added.value("id", int64_t{-1});
    std::string text = added.value("content", std::string());
    ids[text] = id;
    if (id < 0 || id >= vocab_size) continue;
    const bool control = added.value("special", false) || looks_special(text);
    types[id] =
        static_cast<int32_t>(control ? GgufTokenType::kControl : GgufTokenType::kUserDefined);
    by_id[id] = control ? text : replace_metaspace(text);
    present[id] = true;
  }
  GgufTokenizerData data;
  for (uint32_t id = 0; id < vocab_size; ++id) {
    if (!present[id]) by_id[id] = "[PAD" + std::to_string(id) + "]";
  }
  data.tokens = std::move(by_id);
  data.token_types = std::move(types);
  if (Status s = read_merges(model, data.merges); !s) return s;

  const std::filesystem::path config_path =
      std::filesystem::path(tokenizer_json).parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    Result<json> config = load_json(config_path.string());
    if (!config) return config.status();
    data.bos_id = config_token_id(*config, "bos_token", ids);
    data.eos_id = config_token_id(*config, "eos_token", ids);
    data.padding_id = config_token_id(*config, "pad_token", ids);
    data.add_bos = config->value("add_bos_token", false);
    data.add_eos = config->value("add_eos_token", false);
  }
  return data;
}

void write_tokenizer_metadata(const GgufTokenizerData& data, GgufWriter& w) {
  std::vector<GgufValue> tokens, types, merges;
  tokens.reserve(data.tokens.size());
  for (const std::string& t : data.tokens) tokens.push_back(GgufValue::string(t));
  types.reserve(data.token_types.size());
  for (int32_t t : data.token_types) types.push_back(GgufValue::i32(t));
  merges.reserve(data.merges.size());
  for (const std::string& m : data.merges) merges.push_back(GgufValue::string(m));
  w.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
  w.set("tokenizer.ggml.pre", GgufValue::string("joyai-llm"));
  w.set("tokenizer.ggml.tokens", GgufValue::array(GgufValueType::STRING, std::move(tokens)));
  w.set("tokenizer.ggml.token_type", GgufValue::array(GgufValueType::I32, std::move(types)));
  w.set("tokenizer.ggml.merges", GgufValue::array(GgufValueType::STRING, std::move(merges)));
  if (data.bos_id >= 0) w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(uint32_t(data.bos_id)));
  if (data.eos_id >= 0) w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(uint32_t(data.eos_id)));
  if (data.padding_id >= 0) {
    w.set("tokenizer.ggml.padding_token_id", GgufValue::u32(uint32_t(data.padding_id)));
  }
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(data.add_bos));
  w.set("tokenizer.ggml.add_eos_token", GgufValue::boolean(data.add_eos));
}

}  // namespace v4
