// The routed experts of one MoE layer at the `small` synthetic shape (32 experts of
// 1024 → 512 → 1024, Q4_K as in the ds4-q4 recipe, 6 experts per token), for a batch of decode
// tokens with seeded random routing. Two ways to run the same arithmetic (bit-identical
// outputs, checked once before timing):
//   PerExpert — each expert's gate, up, SwiGLU and down as separate backend calls (three thread
//               pool passes per expert, the forward's path before the grouped op);
//   Grouped   — Backend::grouped_expert_ffn: one pass for gate+up+SwiGLU and one for down, for
//               all experts at once.
//
//   build/bench/moe_bench [--benchmark_filter=/16]
//
// Counter: tokens_per_second (batch tokens through the layer's routed experts per second).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/moe_routing.h"
#include "kernels/cpu/quant.h"
#include "model/backend/cpu_backend.h"

namespace {

// One expert's rows of a routed batch.
struct ExpertGroup {
  int32_t expert = 0;
  int64_t first_row = 0;
  int64_t n_rows = 0;
};
using v4::GgmlType;

constexpr int64_t kEmbd = 1024, kFf = 512;
constexpr int32_t kExperts = 32;
constexpr int kUsed = 6;
constexpr float kLimit = 10.0f;

struct Stack {
  std::vector<uint8_t> bytes;
  v4::ExpertStack view;
};

Stack make_stack(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  const size_t row_bytes = static_cast<size_t>(*v4::ggml_row_size(GgmlType::Q4_K, cols));
  Stack s;
  s.bytes.resize(row_bytes * static_cast<size_t>(rows * kExperts));
  // One quantized block pattern per matrix row, tiled: quantizing every row takes seconds.
  std::vector<float> row(static_cast<size_t>(cols));
  std::vector<uint8_t> pattern(row_bytes * 64);
  for (size_t r = 0; r < 64; ++r) {
    for (float& v : row) v = dist(rng);
    v4::kernels::quantize_row(GgmlType::Q4_K, row.data(), &pattern[r * row_bytes], cols);
  }
  for (int64_t r = 0; r < rows * kExperts; ++r) {
    std::memcpy(&s.bytes[static_cast<size_t>(r) * row_bytes],
                &pattern[static_cast<size_t>(r % 61) * row_bytes], row_bytes);
  }
  s.view.first = {GgmlType::Q4_K, s.bytes.data(), cols, rows, row_bytes};
  s.view.stride = row_bytes * static_cast<size_t>(rows);
  return s;
}

struct Layer {
  Stack gate = make_stack(kFf, kEmbd, 1), up = make_stack(kFf, kEmbd, 2),
        down = make_stack(kEmbd, kFf, 3);
  v4::ExpertFfnWeights weights() const { return {gate.view, up.view, down.view, kLimit}; }
};

const Layer& layer() {
  static const Layer l;
  return l;
}

// `tokens` tokens routed to kUsed distinct experts each: rows grouped by expert, per row its
// input row (a copy of the token's activation) and weight.
struct Routed {
  std::vector<ExpertGroup> groups;
  std::vector<int64_t> offsets;  // per expert, its first row (and one end entry)
  std::vector<float> x, scales;
};

Routed route(int64_t tokens) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> act(static_cast<size_t>(tokens * kEmbd));
  for (float& v : act) v = dist(rng);
  std::vector<std::vector<int64_t>> users(kExperts);
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<int32_t> ids(kExperts);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    for (int s = 0; s < kUsed; ++s) users[static_cast<size_t>(ids[s])].push_back(t);
  }
  Routed r;
  for (int32_t e = 0; e < kExperts; ++e) {
    const auto& list = users[static_cast<size_t>(e)];
    r.offsets.push_back(static_cast<int64_t>(r.scales.size()));
    if (list.empty()) continue;
    r.groups.push_back(
        {e, static_cast<int64_t>(r.scales.size()), static_cast<int64_t>(list.size())});
    for (int64_t t : list) {
      r.x.insert(r.x.end(), &act[static_cast<size_t>(t * kEmbd)],
                 &act[static_cast<size_t>((t + 1) * kEmbd)]);
      r.scales.push_back(0.1f + 0.01f * static_cast<float>(t % 7));
    }
  }
  r.offsets.push_back(static_cast<int64_t>(r.scales.size()));
  return r;
}

void per_expert(v4::CpuBackend& be, const Routed& r, std::vector<float>& g, std::vector<float>& u,
                float* y) {
  const v4::ExpertFfnWeights w = layer().weights();
  for (const ExpertGroup& grp : r.groups) {
    const float* x = &r.x[static_cast<size_t>(grp.first_row * kEmbd)];
    be.matmul(w.gate.matrix(grp.expert), x, grp.n_rows, g.data());
    be.matmul(w.up.matrix(grp.expert), x, grp.n_rows, u.data());
    for (int64_t i = 0; i < grp.n_rows; ++i) {
      v4::kernels::swiglu_row(&g[static_cast<size_t>(i * kFf)], &u[static_cast<size_t>(i * kFf)],
                              kFf, kLimit, r.scales[static_cast<size_t>(grp.first_row + i)]);
    }
    be.matmul(w.down.matrix(grp.expert), g.data(), grp.n_rows, y + grp.first_row * kEmbd);
  }
}

void BM_Moe(benchmark::State& state, bool grouped) {
  const int64_t tokens = state.range(0);
  const Routed r = route(tokens);
  v4::CpuBackend be;
  const size_t rows = r.scales.size();
  std::vector<float> y(rows * kEmbd), check(rows * kEmbd), g(rows * kFf), u(rows * kFf);
  be.grouped_expert_ffn(layer().weights(), r.offsets.data(), kExperts, r.offsets[kExperts],
                        r.x.data(), nullptr, r.scales.data(), check.data());
  per_expert(be, r, g, u, y.data());
  if (std::memcmp(y.data(), check.data(), y.size() * sizeof(float)) != 0) {
    state.SkipWithError("grouped and per-expert outputs differ");
    return;
  }
  for (auto _ : state) {
    if (grouped) {
      be.grouped_expert_ffn(layer().weights(), r.offsets.data(), kExperts, r.offsets[kExperts],
                            r.x.data(), nullptr, r.scales.data(), y.data());
    } else {
      per_expert(be, r, g, u, y.data());
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["tokens_per_second"] = benchmark::Counter(
      static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["experts"] = static_cast<double>(r.groups.size());
}

BENCHMARK_CAPTURE(BM_Moe, PerExpert, false)->Arg(1)->Arg(4)->Arg(16)->Arg(64)->UseRealTime();
BENCHMARK_CAPTURE(BM_Moe, Grouped, true)->Arg(1)->Arg(4)->Arg(16)->Arg(64)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
