// The decode matrix products on a GPU (--device cuda, the default) or on the host executor
// (--device emulated): weight bytes per second for the V4-Flash shapes that a decode step reads,
// per weight type and token count, so kernel changes are measured one shape at a time. The
// weights are random values quantized to the type (the speed does not depend on the values).
// Then what a sampled row costs after the head: its best tokens selected on the device and
// copied back (Backend::top_logits) against the whole row copied back and scanned on the host,
// and its token drawn on the device (Backend::draw_rows, sampling without a top-k) against the
// row copied back and drawn from on the host. And what batch invariance costs each product: the
// invariant product against the fastest of a sweep of splits of its sums (InvarianceCost/). And
// prefill's products on the tensor cores against the warp kernels (TensorCores/). And Q8_0
// weights in the GGUF layout against the split layout the upload writes (Q8_0Layout/).
//
//   build/bench/device_matmul_bench [--device cuda] [--benchmark_filter=Q8_0]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/whole_row_draw.h"
#include "kernels/device/quant_units_i8.h"
#include "model/backend/device/backend_factory.h"
#include "model/backend/device/device_ops_matmul.h"

namespace v4 {
namespace {

std::string g_device = "cuda";

std::unique_ptr<Backend> make_device(bool tensor_cores) {
  Result<device::DeviceSpec> spec = device::parse_device(g_device);
  if (!spec) return nullptr;
  spec->ops.tensor_cores = tensor_cores;
  Result<std::unique_ptr<Backend>> made = device::make_backend(*spec, 1);
  return made ? std::move(*made) : std::unique_ptr<Backend>();
}

Backend* backend() {
  static std::unique_ptr<Backend> be = make_device(true);
  return be.get();
}

// The same device with prefill's products kept on the warp kernels (TensorCores/).
Backend* warp_only_backend() {
  static std::unique_ptr<Backend> be = make_device(false);
  return be.get();
}

// The device, or null after marking the benchmark skipped with the reason.
Backend* backend_or_skip(benchmark::State& state) {
  Backend* be = backend();
  if (!be) state.SkipWithError(("no usable device \"" + g_device + "\"").c_str());
  return be;
}

Tensor whole(DeviceBuffer* b) {
  return Tensor::contiguous(b, 0, GgmlType::I8, {static_cast<int64_t>(b->bytes()), 1, 1, 1});
}

// rows × cols random weights of `type` in the backend's memory (one row generated, repeated).
std::unique_ptr<DeviceBuffer> device_weights(Backend& be, GgmlType type, int64_t rows, int64_t cols,
                                             size_t* row_bytes) {
  *row_bytes = *ggml_row_size(type, cols);
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 0.5f);
  const int64_t distinct = 64;
  std::vector<float> values(cols);
  std::vector<uint8_t> host(*row_bytes * distinct);
  for (int64_t r = 0; r < distinct; ++r) {
    for (float& v : values) v = dist(rng);
    kernels::quantize_row(type, values.data(), host.data() + r * *row_bytes, cols);
  }
  auto buffer = be.allocate(*row_bytes * rows);
  for (int64_t r = 0; r < rows; r += distinct) {
    const int64_t n = std::min(distinct, rows - r);
    (void)be.copy_to_device(host.data(), whole(buffer.get()), r * *row_bytes, n * *row_bytes);
  }
  return buffer;
}

// A product's operands in the backend's memory: the weights (device_weights; Q8_0 rows in the
// split layout the upload writes, unless `gguf_layout`), `tokens` rows of activations and room
// for the outputs.
struct DeviceProduct {
  std::unique_ptr<DeviceBuffer> w, x, y;
  kernels::MatrixView m;
  const float* xp() const { return static_cast<const float*>(x->data()); }
  float* yp() const { return static_cast<float*>(y->data()); }
};

DeviceProduct device_product(Backend& be, GgmlType type, int64_t rows, int64_t cols, int64_t tokens,
                             bool gguf_layout = false) {
  DeviceProduct p;
  size_t row_bytes = 0;
  p.w = device_weights(be, type, rows, cols, &row_bytes);
  std::vector<float> xs(tokens * cols, 0.25f);
  p.x = be.allocate(xs.size() * sizeof(float));
  (void)be.copy_to_device(xs.data(), whole(p.x.get()), 0, xs.size() * sizeof(float));
  p.y = be.allocate(tokens * rows * sizeof(float));
  p.m = {type, static_cast<const uint8_t*>(p.w->data()), cols, rows, row_bytes};
  if (type == GgmlType::Q8_0 && !gguf_layout) be.split_q8_0_rows(p.m, rows);
  return p;
}

void BM_Matmul(benchmark::State& state, GgmlType type, int64_t rows, int64_t cols) {
  Backend* be = backend_or_skip(state);
  if (!be) return;
  const int64_t tokens = state.range(0);
  const DeviceProduct p = device_product(*be, type, rows, cols, tokens);
  float sink = 0;
  for (auto _ : state) {
    be->matmul(p.m, p.xp(), cols, tokens, p.yp(), rows);
    (void)be->read_back(p.yp(), &sink, sizeof(sink));  // waits for the product
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(p.m.row_bytes) * rows);
  state.counters["weight_MB"] = static_cast<double>(p.m.row_bytes * rows) / 1e6;
}

// The best wall time of `reps` launches, each waited for by reading a float of `y` back, after
// one untimed launch (the first launch also sizes the kernels' scratch).
template <class Launch>
double best_launch_seconds(Backend& be, const float* y, int reps, Launch&& launch) {
  float sink = 0;
  launch();
  (void)be.read_back(y, &sink, sizeof(sink));
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    launch();
    (void)be.read_back(y, &sink, sizeof(sink));
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// What batch invariance costs one product at `tokens` tokens: the invariant matmul (each row's
// sum split by row length only) against the fastest of a sweep of splits (Backend::matmul_split,
// 32 units to the whole row), the split a kernel free to choose by batch size would take. Times
// are the best of 20 launches, each waited for; `cost` is invariant / fastest (1: free).
void BM_InvarianceCost(benchmark::State& state, GgmlType type, int64_t rows, int64_t cols) {
  Backend* be = backend_or_skip(state);
  if (!be) return;
  const int64_t tokens = state.range(0);
  const DeviceProduct p = device_product(*be, type, rows, cols, tokens);
  const kernels::MatrixView& m = p.m;
  const float* xp = p.xp();
  float* yp = p.yp();
  const auto best_of = [&](auto&& launch) { return best_launch_seconds(*be, yp, 20, launch); };
  const int64_t units = device::row_units(type, cols);  // what Backend::matmul_split counts
  double invariant = 0, fastest = 0;
  int64_t fastest_chunk = 0;
  for (auto _ : state) {
    invariant = best_of([&] { be->matmul(m, xp, cols, tokens, yp, rows); });
    fastest = invariant;
    for (int64_t chunk = 32; chunk < 2 * units; chunk *= 2) {
      bool ran = true;
      const double t =
          best_of([&] { ran = be->matmul_split(m, xp, cols, tokens, yp, rows, chunk); });
      if (!ran) {
        state.SkipWithError("this backend has no split variant of its matmul");
        return;
      }
      if (t < fastest) {
        fastest = t;
        fastest_chunk = std::min(chunk, units);
      }
    }
  }
  state.counters["invariant_us"] = invariant * 1e6;
  state.counters["fastest_split_us"] = fastest * 1e6;
  state.counters["fastest_chunk_units"] = static_cast<double>(fastest_chunk);  // 0: invariant's
  state.counters["cost"] = invariant / fastest;
}

// Whether the first `n` outputs of product a (on be_a) and of product b (on be_b) are the same
// bits: what a benchmark timing two kernels of one product checks before it reports.
bool same_outputs(Backend& be_a, const DeviceProduct& a, Backend& be_b, const DeviceProduct& b,
                  int64_t n) {
  std::vector<float> ya(static_cast<size_t>(n)), yb(ya.size());
  (void)be_a.read_back(a.yp(), ya.data(), ya.size() * sizeof(float));
  (void)be_b.read_back(b.yp(), yb.data(), yb.size() * sizeof(float));
  return ya == yb;
}

// Prefill's products: the tensor-core tiles (device_ops_matmul_mma.h) against the warp kernels
// decode uses, on the same device, at `tokens` tokens. Best of 10 launches each, waited for;
// `speedup` is warp / tensor cores. The two outputs must be the same bits (the design's claim,
// checked here at full size on the benchmark's device): the benchmark fails if they are not.
void BM_TensorCores(benchmark::State& state, GgmlType type, int64_t rows, int64_t cols) {
  Backend* mma = backend_or_skip(state);
  Backend* warp = mma ? warp_only_backend() : nullptr;
  if (!mma || !warp) return;
  const int64_t tokens = state.range(0);
  const DeviceProduct a = device_product(*mma, type, rows, cols, tokens);
  const DeviceProduct b = device_product(*warp, type, rows, cols, tokens);
  const auto best_of = [&](Backend& be, const DeviceProduct& p) {
    return best_launch_seconds(be, p.yp(), 10,
                               [&] { be.matmul(p.m, p.xp(), cols, tokens, p.yp(), rows); });
  };
  double tensor = 0, plain = 0;
  for (auto _ : state) {
    tensor = best_of(*mma, a);
    plain = best_of(*warp, b);
  }
  if (!same_outputs(*mma, a, *warp, b, tokens * rows)) {
    state.SkipWithError("the tensor-core product differs from the warp kernel's");
    return;
  }
  state.counters["tensor_core_us"] = tensor * 1e6;
  state.counters["warp_us"] = plain * 1e6;
  state.counters["speedup"] = plain / tensor;
}

// A Q8_0 product with the weights in the GGUF block layout against the same weights rewritten
// in the split layout (Backend::split_q8_0_rows, the upload's default), on the same device at
// `tokens` tokens. Best of 20 launches each, alternating, waited for; `speedup` is GGUF / split,
// and the GB/s counters are weight bytes over each time. The outputs must be the same bits: the
// benchmark fails if they are not.
void BM_Q8_0Layout(benchmark::State& state, int64_t rows, int64_t cols) {
  Backend* be = backend_or_skip(state);
  if (!be) return;
  const int64_t tokens = state.range(0);
  const DeviceProduct gguf = device_product(*be, GgmlType::Q8_0, rows, cols, tokens, true);
  const DeviceProduct split = device_product(*be, GgmlType::Q8_0, rows, cols, tokens);
  if (!split.m.q8_0_split) {
    state.SkipWithError("this backend keeps Q8_0 weights in the GGUF layout");
    return;
  }
  const auto best_of = [&](const DeviceProduct& p) {
    return best_launch_seconds(*be, p.yp(), 20,
                               [&] { be->matmul(p.m, p.xp(), cols, tokens, p.yp(), rows); });
  };
  double gguf_s = 0, split_s = 0;
  for (auto _ : state) {
    gguf_s = best_of(gguf);
    split_s = best_of(split);
    gguf_s = std::min(gguf_s, best_of(gguf));
  }
  if (!same_outputs(*be, gguf, *be, split, tokens * rows)) {
    state.SkipWithError("the split layout's product differs from the GGUF layout's");
    return;
  }
  const double bytes = static_cast<double>(gguf.m.row_bytes) * static_cast<double>(rows);
  state.counters["gguf_us"] = gguf_s * 1e6;
  state.counters["split_us"] = split_s * 1e6;
  state.counters["gguf_GBps"] = bytes / gguf_s / 1e9;
  state.counters["split_GBps"] = bytes / split_s / 1e9;
  state.counters["speedup"] = gguf_s / split_s;
}

constexpr int64_t kVocab = 129280;  // V4's vocabulary

// Random logits for `rows` rows, on the backend.
std::unique_ptr<DeviceBuffer> device_logits(Backend& be, int64_t rows) {
  std::mt19937 rng(9);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> host(static_cast<size_t>(rows * kVocab));
  for (float& v : host) v = dist(rng);
  auto buffer = be.allocate(host.size() * sizeof(float));
  (void)be.copy_to_device(host.data(), whole(buffer.get()), 0, host.size() * sizeof(float));
  return buffer;
}

// top_logits for `rows` rows and k = range(1), and the copy back of ids, logits and normalizers.
void BM_SelectOnDevice(benchmark::State& state) {
  Backend* be = backend_or_skip(state);
  if (!be) return;
  const int64_t rows = state.range(0), k = state.range(1);
  auto logits = device_logits(*be, rows);
  auto ids = be->allocate(rows * k * sizeof(int32_t));
  auto values = be->allocate(rows * k * sizeof(float));
  auto normalizers = be->allocate(rows * sizeof(double));
  std::vector<int32_t> host_ids(rows * k);
  std::vector<float> host_values(rows * k);
  std::vector<double> host_normalizers(rows);
  for (auto _ : state) {
    be->top_logits(static_cast<const float*>(logits->data()), rows, kVocab,
                   static_cast<uint32_t>(k), static_cast<int32_t*>(ids->data()),
                   static_cast<float*>(values->data()), static_cast<double*>(normalizers->data()));
    (void)be->copy_to_host(whole(ids.get()), 0, host_ids.data(), host_ids.size() * 4);
    (void)be->copy_to_host(whole(values.get()), 0, host_values.data(), host_values.size() * 4);
    (void)be->copy_to_host(whole(normalizers.get()), 0, host_normalizers.data(), rows * 8);
  }
  benchmark::DoNotOptimize(host_ids.data());
}

// The filters of the draw benchmarks: sampling without a top-k, as an OpenAI request does.
constexpr kernels::WholeRowDrawOptions kDrawFilters{0.8f, 0.95f, 0.0f};

// draw_rows for `rows` rows sampled without a top-k (kDrawFilters), and the copy
// back of the tokens and their logits: what such a request's row costs with the draw on the
// device, against Select/rows_whole_draw's copy and host draw.
void BM_DrawOnDevice(benchmark::State& state) {
  Backend* be = backend_or_skip(state);
  if (!be) return;
  const int64_t rows = state.range(0);
  auto logits = device_logits(*be, rows);
  std::vector<kernels::RowDrawParams> params(static_cast<size_t>(rows), {kDrawFilters});
  for (size_t r = 0; r < params.size(); ++r) params[r].bits53 = (r * 0x9e3779b97f4a7c15ull) >> 11;
  auto device_params = be->allocate(params.size() * sizeof(kernels::RowDrawParams));
  (void)be->copy_to_device(params.data(), whole(device_params.get()), 0,
                           params.size() * sizeof(kernels::RowDrawParams));
  auto drawn = be->allocate(rows * 2 * sizeof(int32_t));
  std::vector<int32_t> host(static_cast<size_t>(rows * 2));
  for (auto _ : state) {
    auto* tokens = static_cast<int32_t*>(drawn->data());
    be->draw_rows(static_cast<const float*>(logits->data()), rows, kVocab,
                  static_cast<const kernels::RowDrawParams*>(device_params->data()), tokens,
                  reinterpret_cast<float*>(tokens + rows));
    (void)be->copy_to_host(whole(drawn.get()), 0, host.data(), host.size() * sizeof(int32_t));
  }
  benchmark::DoNotOptimize(host.data());
}

// The rows copied back whole and drawn from on the host (kernels::draw_whole_row; before the
// device drew, and what a request that needs its row still pays).
void BM_CopyRowsAndDrawOnHost(benchmark::State& state) {
  Backend* be = backend_or_skip(state);
  if (!be) return;
  const int64_t rows = state.range(0);
  auto logits = device_logits(*be, rows);
  std::vector<float> host(static_cast<size_t>(rows * kVocab));
  int64_t sum = 0;
  for (auto _ : state) {
    (void)be->copy_to_host(whole(logits.get()), 0, host.data(), host.size() * sizeof(float));
    for (int64_t r = 0; r < rows; ++r) {
      const std::span<const float> row(host.data() + r * kVocab, static_cast<size_t>(kVocab));
      sum += kernels::draw_whole_row(row, kDrawFilters, static_cast<uint64_t>(r) << 20);
    }
  }
  benchmark::DoNotOptimize(sum);
}

// The rows copied back whole and each scanned for its best token on the host (greedy before
// the device selected).
void BM_CopyRowsToHost(benchmark::State& state) {
  Backend* be = backend_or_skip(state);
  if (!be) return;
  const int64_t rows = state.range(0);
  auto logits = device_logits(*be, rows);
  std::vector<float> host(static_cast<size_t>(rows * kVocab));
  int64_t best = 0;
  for (auto _ : state) {
    (void)be->copy_to_host(whole(logits.get()), 0, host.data(), host.size() * sizeof(float));
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = host.data() + r * kVocab;
      best += std::max_element(row, row + kVocab) - row;
    }
  }
  benchmark::DoNotOptimize(best);
}

// The products of a V4-Flash decode step (spec §1, §5.4) in the ds4 recipes' types, and the
// routed experts' MXFP4 of the llama.cpp family's files.
void register_all() {
  struct Shape {
    const char* name;
    GgmlType type;
    int64_t rows, cols;
  };
  const Shape shapes[] = {
      {"q_b", GgmlType::Q8_0, 32768, 1024},
      {"output_b", GgmlType::Q8_0, 4096, 8192},
      {"q_a", GgmlType::Q8_0, 1024, 4096},
      {"head", GgmlType::Q8_0, 129280, 4096},
      {"indexer_q_b", GgmlType::F16, 8192, 1024},
      {"compressor", GgmlType::F16, 1024, 4096},
      {"router", GgmlType::F16, 256, 4096},
      {"hc_fn", GgmlType::F16, 24, 16384},
      {"expert_gate", GgmlType::IQ2_XXS, 2048, 4096},
      {"expert_down", GgmlType::Q2_K, 4096, 2048},
      {"expert_gate", GgmlType::MXFP4, 2048, 4096},  // the llama.cpp family's routed experts
  };
  for (const Shape& s : shapes) {
    const std::string name = std::string("Matmul/") + s.name + "/" +
                             std::string(ggml_type_name(s.type)) + "/" + std::to_string(s.rows) +
                             "x" + std::to_string(s.cols);
    benchmark::RegisterBenchmark(name.c_str(), BM_Matmul, s.type, s.rows, s.cols)
        ->Arg(1)
        ->Arg(16)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    const std::string cost = "InvarianceCost" + name.substr(name.find('/'));
    benchmark::RegisterBenchmark(cost.c_str(), BM_InvarianceCost, s.type, s.rows, s.cols)
        ->Arg(1)
        ->Arg(16)
        ->Arg(64)
        ->Iterations(1)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (const Shape& s : shapes) {
    if (!kernels::has_int8_units(s.type) || s.rows > 8192) continue;
    const std::string name = std::string("TensorCores/") + s.name + "/" +
                             std::string(ggml_type_name(s.type)) + "/" + std::to_string(s.rows) +
                             "x" + std::to_string(s.cols);
    benchmark::RegisterBenchmark(name.c_str(), BM_TensorCores, s.type, s.rows, s.cols)
        ->Arg(64)
        ->Arg(512)
        ->Iterations(1)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (const Shape& s : shapes) {
    if (s.type != GgmlType::Q8_0) continue;
    const std::string name = std::string("Q8_0Layout/") + s.name + "/" + std::to_string(s.rows) +
                             "x" + std::to_string(s.cols);
    benchmark::RegisterBenchmark(name.c_str(), BM_Q8_0Layout, s.rows, s.cols)
        ->Arg(1)
        ->Arg(16)
        ->Iterations(1)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark("Select/top_logits", BM_SelectOnDevice)
      ->ArgsProduct({{1, 64}, {1, 20, 64}})
      ->ArgNames({"rows", "k"})
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  // What a sampled row costs after the head, for a step of 1 and of 64 sampled rows.
  const auto per_rows = [](const char* name, void (*fn)(benchmark::State&)) {
    benchmark::RegisterBenchmark(name, fn)
        ->Arg(1)
        ->Arg(64)
        ->ArgNames({"rows"})
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  };
  per_rows("Select/draw_rows", BM_DrawOnDevice);
  per_rows("Select/rows_whole_draw", BM_CopyRowsAndDrawOnHost);
  per_rows("Select/rows_to_host", BM_CopyRowsToHost);
}

}  // namespace
}  // namespace v4

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--device") == 0) v4::g_device = argv[i + 1];
  }
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--device") == 0) {
      ++i;
      continue;
    }
    rest.push_back(argv[i]);
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  v4::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
