// Forward-pass throughput on the tiny synthetic model (ds4-q2 recipe, full vocabulary): prefill
// of 64-token chunks and single-token decode, reported as tokens/s (items_per_second).
// Set V4SERVE_TOKENIZER_JSON or run from the repository root (the .venv tokenizer is used).
#include <benchmark/benchmark.h>

#include <memory>

#include "bench/tiny_bench_model.h"
#include "model/backend/cpu_backend.h"
#include "model/v4/v4_forward.h"
#include "model/v4/v4_forward_model.h"

namespace v4 {
namespace {

V4Model* bench_model() {
  static std::unique_ptr<V4Model> model = load_tiny_bench_model();
  return model.get();
}

std::vector<int32_t> bench_tokens(size_t n) {
  std::vector<int32_t> t;
  for (size_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>((i * 7919) % 100000));
  return t;
}

void BM_Prefill(benchmark::State& state) {
  V4Model* m = bench_model();
  if (!m) return state.SkipWithError("could not write or load the benchmark model");
  CpuBackend backend(static_cast<unsigned>(state.range(1)));
  V4Forward fwd(m->weights, backend);
  const std::vector<int32_t> tokens = bench_tokens(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    ContiguousKvState kv(m->weights.config, backend);
    SequenceInput in{&kv, tokens};
    benchmark::DoNotOptimize(fwd.forward({&in, 1}));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_Decode(benchmark::State& state) {
  V4Model* m = bench_model();
  if (!m) return state.SkipWithError("could not write or load the benchmark model");
  CpuBackend backend(static_cast<unsigned>(state.range(0)));
  V4Forward fwd(m->weights, backend);
  const std::vector<int32_t> tokens = bench_tokens(512);
  auto kv = std::make_unique<ContiguousKvState>(m->weights.config, backend);
  size_t pos = 0;
  for (auto _ : state) {
    if (pos == tokens.size()) {  // keep contexts comparable between runs
      state.PauseTiming();
      kv = std::make_unique<ContiguousKvState>(m->weights.config, backend);
      pos = 0;
      state.ResumeTiming();
    }
    SequenceInput in{kv.get(), std::span<const int32_t>(&tokens[pos++], 1)};
    benchmark::DoNotOptimize(fwd.forward({&in, 1}));
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_Prefill)->Args({64, 1})->Args({64, 2})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Decode)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace v4

BENCHMARK_MAIN();
