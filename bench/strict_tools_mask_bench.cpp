// Strict function tools: what the per-step token mask of the DSML tool-call grammar costs
// (worker/dsml_token_mask.h, spec §5.8) over the full DeepSeek vocabulary of 129280 tokens. It
// walks seeded random tool-call blocks through the grammar (each step picks one allowed token at
// random, with the marker and structural tokens favoured so values end) and times every mask as
// the sampler computes it, by grammar phase: tags and names (trie walk), RAW values (a table
// copy) and JSON values (the structured-output mask plus the closing-tag tokens).
// Usage: strict_tools_mask_bench [walks] — set V4SERVE_TOKENIZER_JSON or run from the
// repository root (the .venv tokenizer is used).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "apps/token_vocabulary_source.h"
#include "bench/tiny_bench_model.h"
#include "model/text/tokenizer.h"
#include "worker/dsml_token_mask.h"

namespace v4 {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kTools = R"([
  {"name":"get_weather","parameters":{"type":"object","required":["city"],
    "properties":{"city":{"type":"string"},"unit":{"enum":["celsius","fahrenheit","kelvin"]},
      "days":{"type":"integer","minimum":1,"maximum":14}}}},
  {"name":"search","parameters":{"type":"object","required":["query"],
    "properties":{"query":{"type":"string","maxLength":24},"limit":{"type":"integer"},
      "tags":{"type":"array","items":{"type":"string","maxLength":8},"maxItems":3}}}},
  {"name":"move","parameters":{"type":"object","required":["to"],
    "properties":{"to":{"type":"object","required":["x","y"],"additionalProperties":false,
      "properties":{"x":{"type":"number"},"y":{"type":"number"}}}}}},
  {"name":"noop","parameters":{"type":"object","properties":{}}}])";

struct PhaseCost {
  double total = 0, max = 0;
  size_t count = 0;
};

int run(int walks) {
  std::unique_ptr<V4Model> model = load_tiny_bench_model();
  if (!model) return std::fprintf(stderr, "could not load the benchmark model\n"), 1;
  Result<Tokenizer> tokenizer = Tokenizer::from_gguf(model->file);
  if (!tokenizer) return std::fprintf(stderr, "%s\n", tokenizer.message().c_str()), 1;
  const std::shared_ptr<const TokenVocabulary> vocabulary = apps::token_vocabulary(*tokenizer);
  const std::optional<TokenId> marker = tokenizer->special_token_id("｜DSML｜");
  if (!marker) return std::fprintf(stderr, "no DSML token\n"), 1;
  nlohmann::ordered_json source = {{"marker", *marker}, {"start", "block"}};
  source["tools"] = nlohmann::ordered_json::parse(kTools);
  Result<DsmlToolGrammar> compiled = compile_dsml_tool_grammar(source.dump());
  if (!compiled) return std::fprintf(stderr, "%s\n", compiled.message().c_str()), 1;
  const auto grammar = std::make_shared<const DsmlToolGrammar>(std::move(*compiled));

  const char* names[] = {"free",      "tag",        "tool name",  "param name",
                         "raw value", "raw choice", "json value", "done"};
  constexpr size_t kPhases = sizeof(names) / sizeof(names[0]);
  PhaseCost cost[kPhases];
  std::vector<uint64_t> bits;
  size_t finished = 0;
  for (int walk = 0; walk < walks; ++walk) {
    std::mt19937 rng(static_cast<uint32_t>(walk));
    DsmlToolMatcher m(grammar);
    for (int step = 0; step < 400 && !m.complete(); ++step) {
      const auto phase = static_cast<size_t>(m.phase());
      const auto start = Clock::now();
      dsml_allowed_token_bits(m, *vocabulary, bits);
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      cost[phase].total += seconds;
      cost[phase].max = std::max(cost[phase].max, seconds);
      ++cost[phase].count;
      std::vector<int32_t> ids;
      for (size_t w = 0; w < bits.size(); ++w)
        for (uint64_t b = bits[w]; b; b &= b - 1)
          ids.push_back(static_cast<int32_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(b))));
      if (ids.empty()) break;
      // Values would run long on uniform picks: a RAW value closes ("</" then the marker) or a
      // JSON value may end ("<") with some probability each step.
      int32_t id = ids[std::uniform_int_distribution<size_t>(0, ids.size() - 1)(rng)];
      if (std::bernoulli_distribution(0.3)(rng)) {
        for (int32_t candidate : ids) {
          const std::string_view text = vocabulary->bytes(candidate);
          if (candidate == *marker || text == "</" || text == "<" || text == "\"" || text == "}" ||
              text == "]") {
            id = candidate;
            break;
          }
        }
      }
      m.advance_token(id, vocabulary->bytes(id), vocabulary->is_text(id));
    }
    finished += m.complete();
  }
  std::printf("vocabulary %zu tokens; %d walks, %zu complete blocks\n", vocabulary->size(), walks,
              finished);
  std::printf("%-12s %8s %14s %12s\n", "phase", "masks", "mean_us", "max_us");
  double all = 0;
  size_t count = 0;
  for (size_t p = 0; p < kPhases; ++p) {
    if (!cost[p].count) continue;
    all += cost[p].total;
    count += cost[p].count;
    std::printf("%-12s %8zu %14.1f %12.1f\n", names[p], cost[p].count,
                1e6 * cost[p].total / static_cast<double>(cost[p].count), 1e6 * cost[p].max);
  }
  std::printf("%-12s %8zu %14.1f\n", "all", count,
              count ? 1e6 * all / static_cast<double>(count) : 0);
  return 0;
}

}  // namespace
}  // namespace v4

int main(int argc, char** argv) { return v4::run(argc > 1 ? std::atoi(argv[1]) : 20); }
