// Structured outputs: what the per-step token mask costs next to the engine step it rides on, on
// the tiny synthetic model (ds4-q2 recipe, the full DeepSeek vocabulary of 129280 tokens, as
// `v4serve serve` runs it by default). For batch 1 and 64 it runs seeded JSON-schema requests
// through an EngineCore, then replays every output token through the mask exactly as the sampler
// computes it (GrammarMatcher + allowed_token_bits), and prints the mask time per token, the
// engine's decode step time without constraints, and their ratio per step (a step samples one
// token per sequence, one after the other).
// Usage: structured_output_bench [threads] — set V4SERVE_TOKENIZER_JSON or run from the
// repository root (the .venv tokenizer is used).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>

#include "apps/token_vocabulary_source.h"
#include "bench/tiny_bench_model.h"
#include "model/backend/cpu_backend.h"
#include "model/text/tokenizer.h"
#include "model/v4/v4_forward_model.h"
#include "worker/engine_core.h"
#include "worker/grammar_token_mask.h"

namespace v4 {
namespace {

using Clock = std::chrono::steady_clock;

// Strings, numbers, enums, nesting and arrays: every kind of mask state the walk meets.
constexpr const char* kSchema = R"({"type":"object","additionalProperties":false,
  "required":["name","age","email","tags","address","score"],
  "properties":{"name":{"type":"string","maxLength":24},
    "age":{"type":"integer","minimum":0,"maximum":120},
    "email":{"type":"string","maxLength":32},
    "tags":{"type":"array","items":{"enum":["red","green","blue"]},"maxItems":4},
    "address":{"type":"object","additionalProperties":false,"required":["city","zip"],
      "properties":{"city":{"type":"string","maxLength":16},"zip":{"type":"integer"}}},
    "score":{"type":"number"}}})";

struct RunResult {
  double decode_step_seconds = 0;  // mean over steps where every sequence decoded
  std::map<RequestId, std::vector<int32_t>> outputs;
};

RunResult run_engine(const V4Model& model, unsigned threads, size_t batch, bool constrained,
                     const std::shared_ptr<const TokenVocabulary>& vocabulary, int32_t eos) {
  CpuBackend backend(threads);
  EngineOptions o;
  o.page_tokens = 128;
  o.kv_memory_bytes = uint64_t{2} << 30;
  o.max_context = 1024;
  o.max_batch_tokens = 512;
  o.max_seqs = 64;
  o.vocabulary = vocabulary;
  EngineCore engine(model.weights, backend, o);
  for (size_t i = 0; i < batch; ++i) {
    GenerationRequest r;
    r.prompt = {0, 100, 200, static_cast<int32_t>(300 + i)};
    r.sampling.temperature = 1.0f;
    r.sampling.seed = 1000 + i;
    r.sampling.max_tokens = 128;
    r.sampling.stop_token_ids = {eos};
    if (constrained) {
      r.sampling.constraint = OutputConstraintKind::kJsonSchema;
      r.sampling.constraint_source = kSchema;
    }
    if (!engine.add(r)) std::abort();
  }
  RunResult result;
  double decode_seconds = 0;
  size_t decode_steps = 0;
  while (engine.has_work()) {
    const auto start = Clock::now();
    const std::vector<GenerationEvent> events = engine.step();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    for (const GenerationEvent& e : events)
      if (e.token >= 0) result.outputs[e.id].push_back(e.token);
    // Steady decode: every request of the batch got one token and none is prefilling.
    if (events.size() == batch && result.outputs.size() == batch) {
      decode_seconds += seconds;
      ++decode_steps;
    }
  }
  result.decode_step_seconds = decode_steps ? decode_seconds / decode_steps : 0;
  return result;
}

struct MaskCost {
  double mean_seconds = 0, max_seconds = 0;
  size_t tokens = 0;
};

// The sampler's per-token work, replayed over the recorded outputs.
MaskCost replay_masks(const RunResult& run, const TokenVocabulary& vocabulary, int32_t eos) {
  Result<JsonGrammar> grammar =
      compile_output_constraint(OutputConstraintKind::kJsonSchema, kSchema);
  const auto shared = std::make_shared<const JsonGrammar>(std::move(*grammar));
  MaskCost cost;
  double total = 0;
  std::vector<uint64_t> bits;
  for (const auto& [id, tokens] : run.outputs) {
    GrammarMatcher matcher(shared);
    for (int32_t token : tokens) {
      const auto start = Clock::now();
      if (!matcher.complete()) allowed_token_bits(matcher, vocabulary, bits);
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      total += seconds;
      cost.max_seconds = std::max(cost.max_seconds, seconds);
      ++cost.tokens;
      if (token != eos) matcher.advance(vocabulary.bytes(token));
    }
  }
  cost.mean_seconds = cost.tokens ? total / static_cast<double>(cost.tokens) : 0;
  return cost;
}

int run(unsigned threads) {
  std::unique_ptr<V4Model> model = load_tiny_bench_model();
  if (!model) {
    std::fprintf(stderr, "could not write or load the benchmark model (tokenizer.json?)\n");
    return 1;
  }
  Result<Tokenizer> tokenizer = Tokenizer::from_gguf(model->file);
  if (!tokenizer) return std::fprintf(stderr, "%s\n", tokenizer.message().c_str()), 1;
  const auto build_start = Clock::now();
  const std::shared_ptr<const TokenVocabulary> vocabulary = apps::token_vocabulary(*tokenizer);
  const double build_seconds = std::chrono::duration<double>(Clock::now() - build_start).count();
  const int32_t eos = tokenizer->eos_id();
  std::printf("vocabulary: %zu tokens, %zu trie nodes, built in %.0f ms (once per process)\n",
              vocabulary->size(), vocabulary->trie().size(), build_seconds * 1e3);
  std::printf("%6s %14s %14s %14s %16s %12s\n", "batch", "mask_us/token", "mask_max_us", "step_ms",
              "mask_per_step_ms", "mask/step");
  for (size_t batch : {size_t{1}, size_t{64}}) {
    const RunResult plain = run_engine(*model, threads, batch, false, vocabulary, eos);
    const RunResult constrained = run_engine(*model, threads, batch, true, vocabulary, eos);
    const MaskCost mask = replay_masks(constrained, *vocabulary, eos);
    const double per_step = mask.mean_seconds * static_cast<double>(batch);
    std::printf("%6zu %14.1f %14.1f %14.3f %16.3f %11.2f%%\n", batch, mask.mean_seconds * 1e6,
                mask.max_seconds * 1e6, plain.decode_step_seconds * 1e3, per_step * 1e3,
                100.0 * per_step / plain.decode_step_seconds);
    std::printf("       constrained run: %zu masked tokens, decode step %.3f ms\n", mask.tokens,
                constrained.decode_step_seconds * 1e3);
  }
  return 0;
}

}  // namespace
}  // namespace v4

int main(int argc, char** argv) {
  const unsigned threads = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 2;
  return v4::run(threads);
}
