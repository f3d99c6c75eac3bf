// Throughput of the V4 forward on one model and how close batch-1 decode comes to the memory
// roofline: prefill and decode tokens/s, the weight bytes a decode token really reads (counted
// from the matrices and routed experts the steps touched), and the machine's streaming-read
// bandwidth measured with the same threads. Token ids are synthetic (a fixed pseudo-random
// sequence): throughput does not depend on the text, only on which experts get routed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/status.h"
#include "model/backend/backend.h"
#include "model/v4/expert_tiers.h"
#include "model/v4/v4_forward.h"
#include "model/v4/v4_forward_model.h"
#include "model/v4/weight_traffic.h"

namespace v4 {

struct ForwardBenchmarkOptions {
  uint32_t prompt_tokens = 128;        // prefill: one sequence, one forward call
  uint32_t decode_prompt_tokens = 16;  // prefilled (untimed) for each decoding sequence
  uint32_t decode_tokens = 32;         // timed decode steps per batch size
  // Decode rows drawn on the device (Backend::draw_rows: temperature 1, top-p 0.95, a sampling
  // server's rows) instead of returning their best token (a greedy server's).
  bool sampled = false;
  std::vector<uint32_t> batch_sizes = {1, 16};
  uint64_t bandwidth_bytes = uint64_t{1} << 30;  // ≫ LLC, so the read streams from DRAM
  uint32_t bandwidth_repeats = 5;                // the best pass is reported
  uint64_t seed = 1;                             // of the synthetic token ids
  // The weights in the backend's memory (a GPU's: device_weights.h); null: the model's mapping.
  const V4Weights* resident_weights = nullptr;
  // With resident weights uploaded with these tiers: the cold experts run on a CPU backend of
  // as many threads, from the model's host weights (TieredExpertDispatcher).
  const ExpertTiers* tiers = nullptr;
  // Decode-step recordings (ForwardLimits::step_graphs). Where the backend records steps, each
  // batch's timed decode also runs without them, on the same backend, for the ratio.
  size_t step_graphs = 64;
  // Before the decode passes, every padded batch size up to the largest is recorded, as an
  // engine does at start (V4Forward::capture_decode_graphs), within this many seconds; 0: each
  // shape on its second step.
  double graph_capture_seconds = 120;

  uint32_t max_batch() const {
    return batch_sizes.empty() ? 0 : *std::max_element(batch_sizes.begin(), batch_sizes.end());
  }
  // Tokens of the largest step the benchmark runs: the prompt, or every decoding sequence's
  // prompt at once.
  int64_t largest_step() const;
  // A bound on the positions its sequences reach.
  int64_t longest_context() const {
    return int64_t{prompt_tokens} + decode_prompt_tokens + decode_tokens;
  }
};

struct PrefillMeasurement {
  uint32_t tokens = 0;
  double seconds = 0;
  StepTraffic traffic;

  double tokens_per_second() const { return tokens / seconds; }
};

struct DecodeMeasurement {
  uint32_t batch = 0;
  uint32_t steps = 0;
  double seconds = 0;   // of the timed steps only
  StepTraffic traffic;  // summed over the timed steps
  uint32_t moe_layers = 0;
  // Where steps were recorded: of the timed steps, how many ran from a recording and what
  // recording cost (within `seconds`), and the same steps' time without recordings.
  uint64_t replayed_steps = 0;
  double capture_seconds = 0;
  double seconds_without_graphs = 0;  // 0: not measured
  // Kernels the steps launched, counted on a pass without recordings (Backend::kernel_launches;
  // 0: a backend that launches none, or every pass replayed).
  uint64_t kernel_launches = 0;

  uint64_t tokens() const { return uint64_t{batch} * steps; }
  double tokens_per_second() const { return static_cast<double>(tokens()) / seconds; }
  double weight_bytes_per_step() const { return static_cast<double>(traffic.total()) / steps; }
  double kernel_launches_per_step() const { return static_cast<double>(kernel_launches) / steps; }
  double weight_bytes_per_token() const {
    return static_cast<double>(traffic.total()) / static_cast<double>(tokens());
  }
  // Weight bytes streamed per second: bytes touched per step × steps/s.
  double weight_bytes_per_second() const { return static_cast<double>(traffic.total()) / seconds; }
  // Distinct routed experts read per MoE layer per step (batch 1: the real top-k).
  double routed_experts_per_step_layer() const {
    return static_cast<double>(traffic.routed_experts) / (static_cast<double>(steps) * moe_layers);
  }
};

struct BandwidthMeasurement {
  uint64_t buffer_bytes = 0;
  unsigned threads = 0;
  double bytes_per_second = 0;  // best pass
  double checksum = 0;          // sum of the buffer, kept so the reads cannot be optimised away
  bool device_copy = false;     // measured as a device-to-device copy (bytes read + written)
};

struct ForwardBenchmarkResult {
  unsigned threads = 0;
  uint64_t model_bytes = 0;  // every tensor of the file
  PrefillMeasurement prefill;
  std::vector<DecodeMeasurement> decode;  // one per batch size, in option order
  BandwidthMeasurement bandwidth;
  // With tiers: routed (token, expert) pairs run on the device and on the CPU.
  uint64_t hot_pairs = 0, cold_pairs = 0;
  DecodeGraphCapture start_graphs;  // what was recorded before the decode passes
  // Device memory of the step beyond weights and KV, after every pass: the forward's workspace
  // (sized for the largest step, max_tokens) and the kernels' scratch at its largest, which the
  // device fit check bounds beforehand (apps/device_setup.cpp, device/scratch_bound.h).
  int64_t max_tokens = 0;
  uint64_t workspace_bytes = 0, scratch_bytes = 0;
  // The largest request each scratch slot had, summed (Backend::scratch_requested_bytes).
  uint64_t scratch_requested_bytes = 0;
};

// Runs prefill, then decode at each batch size, then the bandwidth probe, on `backend`. The
// model's pages are read once first so no measurement pays for faulting the mapping in.
Result<ForwardBenchmarkResult> run_forward_benchmark(const V4Model& model, Backend& backend,
                                                     const ForwardBenchmarkOptions& options);

// Multi-threaded streaming read (float sum) of a `bytes` buffer, best of `repeats` passes.
BandwidthMeasurement measure_read_bandwidth(Backend& backend, uint64_t bytes, uint32_t repeats);

// A GPU's memory bandwidth: device-to-device copies of `bytes`, counted as bytes read plus bytes
// written per second, best of `repeats` (what a weight-streaming kernel can hope to reach).
BandwidthMeasurement measure_device_bandwidth(Backend& backend, uint64_t bytes, uint32_t repeats);

// `count` ids in [0, n_vocab) from a fixed generator: the same for the same seed everywhere.
std::vector<int32_t> synthetic_token_ids(uint32_t n_vocab, size_t count, uint64_t seed);

}  // namespace v4
