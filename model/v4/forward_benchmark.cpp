#include "model/v4/forward_benchmark.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <span>
#include <string>

#include "model/backend/cpu_backend.h"
#include "model/v4/sequence_state.h"
#include "model/v4/tiered_expert_dispatcher.h"
#include "model/v4/v4_forward.h"

namespace v4 {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Reads one byte of every page of every tensor, so the mapping is resident before anything is
// timed: otherwise the first step to route to an expert would pay its page faults.
uint64_t prefault_tensors(const GgufFile& file, Backend& backend) {
  constexpr int64_t kPage = 4096;
  uint64_t total = 0;
  for (const GgufTensorInfo& t : file.tensors()) {
    if (!t.data || t.n_bytes == 0) continue;
    total += t.n_bytes;
    const int64_t pages = (static_cast<int64_t>(t.n_bytes) + kPage - 1) / kPage;
    backend.parallel_for(pages, [&](int64_t begin, int64_t end) {
      uint8_t sink = 0;
      for (int64_t p = begin; p < end; ++p) sink ^= t.data[p * kPage];
      // Keeps the reads: a volatile store of their combined value.
      volatile uint8_t keep = sink;
      (void)keep;
    });
  }
  return total;
}

// Sum of n floats (n a multiple of 16) with four independent 4-wide accumulators, so the loop is
// bound by memory, not by the latency of one dependent add chain (no -ffast-math here to let
// the compiler reassociate a scalar sum).
float sum_floats(const float* p, int64_t n) {
  using Float4 = float __attribute__((vector_size(16)));
  Float4 acc0 = {}, acc1 = {}, acc2 = {}, acc3 = {};
  for (int64_t i = 0; i < n; i += 16) {
    Float4 v0, v1, v2, v3;
    std::memcpy(&v0, p + i, sizeof v0);
    std::memcpy(&v1, p + i + 4, sizeof v1);
    std::memcpy(&v2, p + i + 8, sizeof v2);
    std::memcpy(&v3, p + i + 12, sizeof v3);
    acc0 += v0;
    acc1 += v1;
    acc2 += v2;
    acc3 += v3;
  }
  const Float4 acc = (acc0 + acc1) + (acc2 + acc3);
  return acc[0] + acc[1] + acc[2] + acc[3];
}

// The forward runs twice on fresh state with the same tokens: timed with the recorder off (its
// read-back of the dispatch plan waits for the device, so it must not be in the time), then
// untimed with it on. The forward is deterministic, so the second run routes to the same experts
// and reads the same weights as the timed one.
Result<PrefillMeasurement> measure_prefill(V4Forward& forward, WeightTrafficRecorder& recorder,
                                           const V4Config& config,
                                           const ForwardBenchmarkOptions& o) {
  PrefillMeasurement m;
  m.tokens = o.prompt_tokens;
  const std::vector<int32_t> ids = synthetic_token_ids(config.n_vocab, o.prompt_tokens, o.seed);
  recorder.profile_section("prefill of " + std::to_string(o.prompt_tokens) + " tokens");
  for (const bool timed : {true, false}) {
    ContiguousKvState state(config, recorder);
    SequenceInput in{&state, ids};
    recorder.set_recording(!timed);
    recorder.take_ranges();
    const Clock::time_point start = Clock::now();
    Result<ForwardOutput> out = forward.forward({&in, 1});
    if (timed) m.seconds = seconds_since(start);
    recorder.set_recording(true);
    if (!out) return Status::error("prefill: " + out.message());
  }
  m.traffic = summarize_step_traffic(forward.weights(), recorder.take_ranges(), ids);
  return m;
}

// One decode pass: `batch` fresh sequences, each prefilled with its own short prompt (untimed),
// then o.decode_tokens steps of one token per sequence. Timed: the steps' time (recorder off);
// otherwise each step's recorded ranges.
Status decode_pass(V4Forward& forward, WeightTrafficRecorder& recorder, const V4Config& config,
                   uint32_t batch, std::span<const int32_t> ids, const ForwardBenchmarkOptions& o,
                   bool timed, DecodeMeasurement& m,
                   std::vector<std::vector<ByteRange>>& step_ranges) {
  const size_t prompt = o.decode_prompt_tokens;
  const int32_t* decode_ids = ids.data() + batch * prompt;
  const std::string what = "decode batch " + std::to_string(batch) + ": ";
  recorder.set_recording(!timed);
  std::vector<std::unique_ptr<ContiguousKvState>> states;
  std::vector<SequenceInput> inputs(batch);
  for (uint32_t s = 0; s < batch; ++s) {
    states.push_back(std::make_unique<ContiguousKvState>(config, recorder));
    inputs[s] = {states.back().get(), ids.subspan(s * prompt, prompt)};
  }
  const std::string pass = "decode batch " + std::to_string(batch);
  recorder.profile_section(pass + ", its " + std::to_string(prompt) + "-token prompts");
  if (prompt > 0) {
    Result<ForwardOutput> out = forward.forward(inputs);
    if (!out) return Status::error(what + out.message());
  }
  recorder.profile_section(pass + ", steps");
  recorder.take_ranges();
  for (uint32_t step = 0; step < o.decode_tokens; ++step) {
    // As a server's rows: the best token (greedy) or a drawn one comes back, not the row of
    // logits.
    for (uint32_t s = 0; s < batch; ++s) {
      inputs[s].tokens = std::span<const int32_t>(decode_ids + step * batch + s, 1);
      if (o.sampled) {
        const uint64_t bits = splitmix64(o.seed ^ (uint64_t{step} << 32 | s)) >> 11;
        inputs[s].draw = kernels::RowDrawParams{{1.0f, 0.95f, 0.0f}, 0, bits};
      } else {
        inputs[s].top_candidates = 1;
      }
    }
    const uint64_t launched = recorder.kernel_launches();
    const Clock::time_point start = Clock::now();
    Result<ForwardOutput> out = forward.forward(inputs);
    if (timed) m.seconds += seconds_since(start);
    if (timed) m.kernel_launches += recorder.kernel_launches() - launched;
    if (!out) return Status::error(what + out.message());
    if (!timed) step_ranges.push_back(recorder.take_ranges());
  }
  recorder.set_recording(true);
  return Status::ok();
}

// Decode at one batch size: a timed pass (and one of `plain`, the forward without step
// recordings, when given), then the same pass untimed for its weight traffic.
Result<DecodeMeasurement> measure_decode(V4Forward& forward, V4Forward* plain,
                                         WeightTrafficRecorder& recorder, const V4Config& config,
                                         uint32_t batch, const ForwardBenchmarkOptions& o) {
  DecodeMeasurement m;
  m.batch = batch;
  m.steps = o.decode_tokens;
  m.moe_layers = config.n_layer;  // every block ends in an MoE (spec §2)
  const size_t prompt = o.decode_prompt_tokens;
  const std::vector<int32_t> ids = synthetic_token_ids(
      config.n_vocab, batch * (prompt + o.decode_tokens), splitmix64(o.seed + batch));
  std::vector<std::vector<ByteRange>> step_ranges;
  step_ranges.reserve(o.decode_tokens);
  const StepGraphStats before = forward.stats().step_graphs;
  if (Status s = decode_pass(forward, recorder, config, batch, ids, o, true, m, step_ranges); !s)
    return s;
  const StepGraphStats& after = forward.stats().step_graphs;
  m.replayed_steps = after.replays - before.replays;
  m.capture_seconds = after.capture_seconds - before.capture_seconds;
  // A replayed step's launches are not counted (and a recording's first run counts its own).
  if (m.replayed_steps > 0) m.kernel_launches = 0;
  if (plain) {
    DecodeMeasurement without;
    if (Status s = decode_pass(*plain, recorder, config, batch, ids, o, true, without, step_ranges);
        !s)
      return s;
    m.seconds_without_graphs = without.seconds;
    m.kernel_launches = without.kernel_launches;
  }
  if (Status s = decode_pass(forward, recorder, config, batch, ids, o, false, m, step_ranges); !s)
    return s;
  const int32_t* decode_ids = ids.data() + batch * prompt;
  for (uint32_t step = 0; step < o.decode_tokens; ++step) {
    m.traffic += summarize_step_traffic(forward.weights(), step_ranges[step],
                                        std::span<const int32_t>(decode_ids + step * batch, batch));
  }
  return m;
}

Status validate_options(const ForwardBenchmarkOptions& o) {
  if (o.prompt_tokens == 0) return Status::error("prompt tokens must be at least 1");
  if (o.decode_tokens == 0) return Status::error("decode tokens must be at least 1");
  if (o.batch_sizes.empty()) return Status::error("no batch sizes given");
  for (uint32_t b : o.batch_sizes) {
    if (b == 0) return Status::error("batch size 0");
  }
  if (o.bandwidth_bytes < (uint64_t{1} << 20)) {
    return Status::error("bandwidth buffer of " + std::to_string(o.bandwidth_bytes) +
                         " bytes is under 1 MiB");
  }
  if (o.bandwidth_repeats == 0) return Status::error("bandwidth repeats must be at least 1");
  return Status::ok();
}

}  // namespace

std::vector<int32_t> synthetic_token_ids(uint32_t n_vocab, size_t count, uint64_t seed) {
  std::vector<int32_t> ids(count);
  for (size_t i = 0; i < count; ++i) {
    ids[i] = static_cast<int32_t>(splitmix64(seed * 0x100000001b3ull + i) % n_vocab);
  }
  return ids;
}

BandwidthMeasurement measure_device_bandwidth(Backend& backend, uint64_t bytes, uint32_t repeats) {
  BandwidthMeasurement m;
  m.device_copy = true;
  m.buffer_bytes = bytes;
  std::unique_ptr<DeviceBuffer> a = backend.allocate(bytes), b = backend.allocate(bytes);
  const Tensor t = Tensor::whole(b.get());
  float sink = 0;
  // copy_to_host waits for the device, so each pass is timed to its end.
  backend.copy_on_device(a->data(), b->data(), bytes);
  if (!backend.copy_to_host(t, 0, &sink, sizeof(sink))) return m;
  for (uint32_t r = 0; r < repeats; ++r) {
    const Clock::time_point start = Clock::now();
    backend.copy_on_device(a->data(), b->data(), bytes);
    if (!backend.copy_to_host(t, 0, &sink, sizeof(sink))) return m;
    const double seconds = seconds_since(start);
    m.bytes_per_second = std::max(m.bytes_per_second, 2.0 * static_cast<double>(bytes) / seconds);
  }
  return m;
}

BandwidthMeasurement measure_read_bandwidth(Backend& backend, uint64_t bytes, uint32_t repeats) {
  constexpr int64_t kBlockFloats = 16384;  // 64 KiB per task: long sequential runs per thread
  const int64_t blocks = static_cast<int64_t>(bytes / (kBlockFloats * sizeof(float)));
  BandwidthMeasurement m;
  m.threads = backend.threads();
  m.buffer_bytes = static_cast<uint64_t>(blocks) * kBlockFloats * sizeof(float);
  // Uninitialised allocation, then filled by the same threads that read it (first touch puts
  // the pages near the threads that use them on NUMA machines).
  std::unique_ptr<float[]> buffer(new float[static_cast<size_t>(blocks * kBlockFloats)]);
  backend.parallel_for(blocks, [&](int64_t begin, int64_t end) {
    std::fill(buffer.get() + begin * kBlockFloats, buffer.get() + end * kBlockFloats, 1.0f);
  });
  std::vector<float> partial(static_cast<size_t>(blocks));
  for (uint32_t r = 0; r < repeats; ++r) {
    const Clock::time_point start = Clock::now();
    backend.parallel_for(blocks, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        partial[static_cast<size_t>(b)] = sum_floats(buffer.get() + b * kBlockFloats, kBlockFloats);
      }
    });
    const double seconds = seconds_since(start);
    m.bytes_per_second =
        std::max(m.bytes_per_second, static_cast<double>(m.buffer_bytes) / seconds);
  }
  for (float p : partial) m.checksum += p;
  return m;
}

int64_t ForwardBenchmarkOptions::largest_step() const {
  const int64_t batch = max_batch();
  return std::max<int64_t>({int64_t{prompt_tokens}, batch * decode_prompt_tokens, batch});
}

Result<ForwardBenchmarkResult> run_forward_benchmark(const V4Model& model, Backend& backend,
                                                     const ForwardBenchmarkOptions& options) {
  if (Status s = validate_options(options); !s) return s;
  const V4Weights& weights = options.resident_weights ? *options.resident_weights : model.weights;
  const V4Config& config = weights.config;  // resident weights may be scaled up (full-scale runs)
  ForwardBenchmarkResult result;
  result.threads = backend.threads();
  result.model_bytes = prefault_tensors(model.file, backend);

  WeightTrafficRecorder recorder(backend);
  std::unique_ptr<TieredExpertDispatcher> tiered;
  if (options.tiers) {
    Result<std::unique_ptr<TieredExpertDispatcher>> t = TieredExpertDispatcher::create(
        recorder, std::make_unique<CpuBackend>(backend.threads()), model.weights, *options.tiers);
    if (!t) return t.status();
    tiered = std::move(*t);
  }
  // Sized, as an engine's, for the largest step the benchmark runs: no later step moves a
  // buffer a recording uses.
  ForwardLimits limits;
  limits.max_tokens = options.largest_step();
  limits.step_graphs = options.step_graphs;
  V4Forward forward(weights, recorder, tiered.get(), limits);
  // The same steps without recordings, where this backend makes them.
  std::unique_ptr<V4Forward> plain;
  if (options.step_graphs > 0 && backend.can_capture() && !tiered) {
    plain = std::make_unique<V4Forward>(weights, recorder, tiered.get(), ForwardLimits{0, 0, 0});
  }
  {
    // Warm-up: wakes the pool and grows the per-call buffers before anything is timed.
    ContiguousKvState state(config, recorder);
    const std::vector<int32_t> ids = synthetic_token_ids(config.n_vocab, 4, options.seed + 1);
    SequenceInput in{&state, ids};
    Result<ForwardOutput> out = forward.forward({&in, 1});
    if (!out) return Status::error("warm-up: " + out.message());
  }
  Result<PrefillMeasurement> prefill = measure_prefill(forward, recorder, config, options);
  if (!prefill) return prefill.status();
  result.prefill = *prefill;
  if (options.graph_capture_seconds > 0) {
    recorder.set_recording(false);  // the recorder refuses captures while it records traffic
    const ContiguousKvState probe(config, recorder);
    Result<DecodeGraphCapture> graphs = forward.capture_decode_graphs(
        probe.layout(), options.max_batch(), options.graph_capture_seconds);
    recorder.set_recording(true);
    if (!graphs) return Status::error("decode-step graphs at start: " + graphs.message());
    result.start_graphs = *graphs;
  }
  for (uint32_t batch : options.batch_sizes) {
    Result<DecodeMeasurement> decode =
        measure_decode(forward, plain.get(), recorder, config, batch, options);
    if (!decode) return decode.status();
    result.decode.push_back(*decode);
  }
  result.bandwidth =
      options.resident_weights
          ? measure_device_bandwidth(backend, options.bandwidth_bytes, options.bandwidth_repeats)
          : measure_read_bandwidth(backend, options.bandwidth_bytes, options.bandwidth_repeats);
  result.max_tokens = limits.max_tokens;
  result.workspace_bytes = forward.workspace_bytes();
  result.scratch_bytes = backend.scratch_bytes();
  result.scratch_requested_bytes = backend.scratch_requested_bytes();
  if (tiered) {
    result.hot_pairs = tiered->hot_pairs();
    result.cold_pairs = tiered->cold_pairs();
  }
  return result;
}

}  // namespace v4
