// Dequantization throughput of every spec §6 weight format (scalar reference kernels), as GB/s
// of float32 written, next to a single-core memcpy of the same output size as the bandwidth
// reference. The output working set is 64 MiB — far beyond L2 — so the figures include memory
// traffic: input blocks read + float32 written.
//
//   build-q/bench/dequant_bench [--benchmark_filter=Q4_K]
//
// Counters (shown as GB/s): out_GB = float32 written per second (memcpy: bytes copied);
// in_GB = quantized bytes read per second (GB = 1e9 B); bytes_per_second (GiB-based) = out.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/ggml_type.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/vec_dot_avx2.h"

namespace {

using v4::GgmlType;

constexpr size_t kOutputBytes = size_t{64} << 20;
constexpr int64_t kValues = static_cast<int64_t>(kOutputBytes / sizeof(float));
constexpr int64_t kRowValues = 4096;  // a typical weight row (rows are dequantized one at a time)

std::vector<float>& output_buffer() {
  static std::vector<float> buffer(static_cast<size_t>(kValues), 1.0f);  // pages touched once
  return buffer;
}

// kValues values of `type`: a 64-block pattern quantized from Gaussian data (so codes and scales
// are realistic), tiled over the buffer; quantizing all 16M values would take minutes for IQ1.
std::vector<uint8_t> make_input(GgmlType type) {
  const int64_t pattern_values = 64 * 256;
  std::vector<float> x(static_cast<size_t>(pattern_values));
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (float& v : x) v = normal(rng);
  const size_t pattern_bytes = *v4::ggml_row_size(type, pattern_values);
  std::vector<uint8_t> input(*v4::ggml_row_size(type, kValues));
  v4::kernels::quantize_row(type, x.data(), input.data(), pattern_values);
  for (size_t offset = pattern_bytes; offset < input.size(); offset += pattern_bytes) {
    std::memcpy(input.data() + offset, input.data(), pattern_bytes);
  }
  return input;
}

void set_counters(benchmark::State& state, double in_bytes, double out_bytes) {
  const double iterations = static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(iterations * out_bytes));
  state.counters["out_GB"] =
      benchmark::Counter(iterations * out_bytes / 1e9, benchmark::Counter::kIsRate);
  state.counters["in_GB"] =
      benchmark::Counter(iterations * in_bytes / 1e9, benchmark::Counter::kIsRate);
}

void dequantize_benchmark(benchmark::State& state, GgmlType type) {
  const std::vector<uint8_t> input = make_input(type);
  std::vector<float>& output = output_buffer();
  const size_t row_bytes = *v4::ggml_row_size(type, kRowValues);
  for (auto _ : state) {
    for (int64_t row = 0; row < kValues / kRowValues; ++row) {
      v4::kernels::dequantize_row(type, input.data() + row * row_bytes,
                                  output.data() + row * kRowValues, kRowValues);
    }
    benchmark::DoNotOptimize(output.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, static_cast<double>(input.size()), static_cast<double>(kOutputBytes));
}

void memcpy_benchmark(benchmark::State& state) {
  const std::vector<float> source(static_cast<size_t>(kValues), 2.0f);
  std::vector<float>& output = output_buffer();
  for (auto _ : state) {
    std::memcpy(output.data(), source.data(), kOutputBytes);
    benchmark::DoNotOptimize(output.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, static_cast<double>(kOutputBytes), static_cast<double>(kOutputBytes));
}

// One 4096-column weight row dotted with one activation row: the scalar reference against the
// run-time choice (AVX2 where present). Counter: weight values per second.
void vec_dot_benchmark(benchmark::State& state, GgmlType type, bool best) {
  const std::vector<uint8_t> weights = make_input(type);
  std::vector<float> x(static_cast<size_t>(kRowValues), 0.5f);
  std::vector<uint8_t> xq(v4::kernels::activation_row_bytes(type, kRowValues));
  v4::kernels::quantize_activation_row(type, x.data(), kRowValues, xq.data());
  for (auto _ : state) {
    const float dot = best ? v4::kernels::vec_dot_best(type, weights.data(), xq.data(), kRowValues)
                           : v4::kernels::vec_dot(type, weights.data(), xq.data(), kRowValues);
    benchmark::DoNotOptimize(dot);
  }
  state.counters["values"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kRowValues, benchmark::Counter::kIsRate);
}

// matmul_rows over 256 rows × 4096 columns for state.range(0) tokens (multi-token kernels where
// present). Counter: weight·token products per second, so batching gains show as a higher rate.
void matmul_tokens_benchmark(benchmark::State& state, GgmlType type) {
  const int64_t rows = 256, n_tokens = state.range(0);
  const std::vector<uint8_t> weights = make_input(type);
  const size_t act_bytes = v4::kernels::activation_row_bytes(type, kRowValues);
  std::vector<float> x(static_cast<size_t>(kRowValues), 0.5f);
  std::vector<uint8_t> xq(act_bytes * static_cast<size_t>(n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t) {
    v4::kernels::quantize_activation_row(type, x.data(), kRowValues, xq.data() + t * act_bytes);
  }
  std::vector<float> y(static_cast<size_t>(rows * n_tokens));
  const v4::kernels::MatrixView w{type, weights.data(), kRowValues, rows,
                                  *v4::ggml_row_size(type, kRowValues)};
  for (auto _ : state) {
    v4::kernels::matmul_rows(w, xq.data(), n_tokens, y.data(), rows, 0, rows);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["products"] =
      benchmark::Counter(static_cast<double>(state.iterations() * rows * n_tokens) * kRowValues,
                         benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("memcpy_64MiB", memcpy_benchmark)->Unit(benchmark::kMillisecond);
  const GgmlType types[] = {GgmlType::F32,     GgmlType::F16,    GgmlType::BF16,  GgmlType::Q8_0,
                            GgmlType::Q2_K,    GgmlType::Q4_K,   GgmlType::Q5_K,  GgmlType::Q6_K,
                            GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ1_S, GgmlType::IQ1_M,
                            GgmlType::MXFP4};
  for (GgmlType type : types) {
    const std::string name = "dequantize/" + std::string(v4::ggml_type_name(type));
    benchmark::RegisterBenchmark(name.c_str(), dequantize_benchmark, type)
        ->Unit(benchmark::kMillisecond);
  }
  // Every format: the scalar reference against the run-time choice, a ratio in one run.
  for (GgmlType type : types) {
    for (bool best : {false, true}) {
      const std::string name =
          "vec_dot/" + std::string(v4::ggml_type_name(type)) + (best ? "/best" : "/scalar");
      benchmark::RegisterBenchmark(name.c_str(), vec_dot_benchmark, type, best);
    }
  }
  for (GgmlType type : types) {
    const std::string name = "matmul_rows/" + std::string(v4::ggml_type_name(type));
    benchmark::RegisterBenchmark(name.c_str(), matmul_tokens_benchmark, type)
        ->Arg(1)
        ->Arg(4)
        ->Arg(16);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
