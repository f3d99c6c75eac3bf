#include "router/openai/choice_prompt.h"

#include <algorithm>

#include "model/text/detokenizer.h"

namespace v4::router {
namespace {

void fill_text(const Tokenizer& tokenizer, int32_t token, std::string& text,
               std::vector<uint8_t>& bytes) {
  const std::string_view raw = tokenizer.token_bytes(token);
  text = utf8_replace_invalid(raw);
  bytes.assign(raw.begin(), raw.end());
}

// Code points of well-formed UTF-8: the bytes that are not continuation bytes.
uint32_t lead_bytes(std::string_view bytes) {
  return static_cast<uint32_t>(std::count_if(bytes.begin(), bytes.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

}  // namespace

bool score_choice_prompt(const Tokenizer& tokenizer, std::span<const int32_t> ids,
                         size_t echo_start, const std::vector<EnginePromptLogprob>& scores,
                         ChoicePrompt& prompt) {
  if (ids.empty() || scores.size() + 1 != ids.size()) return false;
  const uint32_t top = std::max(prompt.echo_top.value_or(0), prompt.prompt_top.value_or(0));
  prompt.entries.assign(ids.size(), LogprobEntry{});
  prompt.ranks.assign(ids.size(), 0);
  // Offsets count the echoed text, which decodes the tokens from echo_start on byte for byte.
  uint32_t offset = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    LogprobEntry& entry = prompt.entries[i];
    entry.token = ids[i];
    fill_text(tokenizer, ids[i], entry.text, entry.bytes);
    entry.text_offset = offset;
    if (i >= echo_start) offset += lead_bytes(tokenizer.token_bytes(ids[i]));
    if (i == 0) continue;
    const EnginePromptLogprob& score = scores[i - 1];
    if (score.token != ids[i]) return false;
    entry.logprob = score.logprob;
    prompt.ranks[i] = score.rank;
    for (size_t k = 0; k < score.top.size() && k < top; ++k) {
      std::string text;
      std::vector<uint8_t> bytes;
      fill_text(tokenizer, score.top[k].token, text, bytes);
      entry.top.emplace_back(std::move(text), score.top[k].logprob);
      entry.top_bytes.push_back(std::move(bytes));
      entry.top_tokens.push_back(score.top[k].token);
    }
  }
  return true;
}

}  // namespace v4::router
