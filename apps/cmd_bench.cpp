// `v4serve bench --model FILE`: prefill and decode tokens/s of the CPU forward (decode at each
// --batch size), the weight bytes a batch-1 decode token really reads, and the machine's
// streaming-read bandwidth measured in the same run, so the output says how close decode is to
// the memory roofline. --json prints one machine-readable object instead of the text report.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "apps/command.h"
#include "apps/device_setup.h"
#include "apps/engine_flags.h"
#include "apps/synthetic_bench_model.h"
#include "apps/value_format.h"
#include "model/backend/device/backend_factory.h"
#include "model/v4/forward_benchmark.h"

namespace v4::apps {
namespace {

struct BenchFlags {
  std::string model;
  SyntheticBenchSpec synthetic;
  std::string synthetic_preset;  // set: --synthetic instead of --model
  std::string layers;            // --layers: a count, or "fit"
  bool fit_layers = false;       // --layers fit
  unsigned threads = 0;
  std::string device = "cpu";
  std::string batches = "1,16";
  uint32_t bandwidth_mib = 1024;
  bool json = false;
  ForwardBenchmarkOptions options;
  V4ConfigOverrides overrides;
  std::string expert_tiers;  // expert statistics: only each layer's hot set on the device
  double hot_coverage = 0.9;
  // What the fit check counted for the kernels' scratch and the backend reserved
  // (apps::step_reserve); 0 on the CPU, whose weights are read in place.
  uint64_t reserved_scratch_bytes = 0;
  // The fit check's sum and the free memory it was checked against (PreparedDevice).
  uint64_t planned_device_bytes = 0, device_free_bytes = 0;
};

// A whole decimal count in 1..4096 (the batch sizes and layer counts bench takes), or nothing.
std::optional<uint32_t> parse_count(const std::string& text) {
  try {
    size_t used = 0;
    const long value = std::stol(text, &used);
    if (used == text.size() && value >= 1 && value <= 4096) return static_cast<uint32_t>(value);
  } catch (const std::logic_error&) {
    // std::stol's invalid_argument and out_of_range: not a count either.
  }
  return std::nullopt;
}

Result<std::vector<uint32_t>> parse_batches(const std::string& text) {
  std::vector<uint32_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const std::optional<uint32_t> batch = parse_count(item);
    if (!batch) return Status::error("--batch: \"" + item + "\" is not a batch size in 1..4096");
    out.push_back(*batch);
  }
  if (out.empty()) return Status::error("--batch: no batch sizes given");
  return out;
}

double percent_of(double part, double whole) { return whole > 0 ? 100.0 * part / whole : 0.0; }

nlohmann::json traffic_json(const StepTraffic& t) {
  return {{"total", t.total()},
          {"matrices", t.matrix_bytes},
          {"routed_experts", t.routed_expert_bytes},
          {"embedding_rows", t.embedding_bytes},
          {"small_vectors", t.small_bytes}};
}

nlohmann::json report_json(const BenchFlags& f, const V4Config& config,
                           const ForwardBenchmarkResult& r) {
  const double bandwidth = r.bandwidth.bytes_per_second;
  nlohmann::json decode = nlohmann::json::array();
  for (const DecodeMeasurement& d : r.decode) {
    decode.push_back(
        {{"batch", d.batch},
         {"steps", d.steps},
         {"tokens", d.tokens()},
         {"seconds", d.seconds},
         {"tokens_per_second", d.tokens_per_second()},
         {"replayed_steps", d.replayed_steps},
         {"capture_seconds", d.capture_seconds},
         {"seconds_without_graphs", d.seconds_without_graphs},
         {"kernel_launches_per_step", d.kernel_launches_per_step()},
         {"weight_bytes_per_step", d.weight_bytes_per_step()},
         {"weight_bytes_per_token", d.weight_bytes_per_token()},
         {"routed_experts_per_step_per_layer", d.routed_experts_per_step_layer()},
         {"weight_bytes_touched", traffic_json(d.traffic)},
         {"achieved_bytes_per_second", d.weight_bytes_per_second()},
         {"percent_of_bandwidth", percent_of(d.weight_bytes_per_second(), bandwidth)}});
  }
  nlohmann::json report = {{"model", f.model},
                           {"layers", config.n_layer},
                           {"model_tensor_bytes", r.model_bytes},
                           {"threads", r.threads},
                           {"token_ids", "synthetic"},
                           {"experts_per_token", config.n_expert_used},
                           {"n_expert", config.n_expert},
                           {"prefill",
                            {{"tokens", r.prefill.tokens},
                             {"seconds", r.prefill.seconds},
                             {"tokens_per_second", r.prefill.tokens_per_second()},
                             {"weight_bytes_touched", traffic_json(r.prefill.traffic)}}},
                           {"decode_prompt_tokens", f.options.decode_prompt_tokens},
                           {"decode_rows", f.options.sampled ? "drawn" : "greedy"},
                           {"decode", decode},
                           {"memory_bandwidth",
                            {{"buffer_bytes", r.bandwidth.buffer_bytes},
                             {"threads", r.bandwidth.threads},
                             {"bytes_per_second", bandwidth}}}};
  const DecodeGraphCapture& g = r.start_graphs;
  report["start_graphs"] = {{"batch_sizes", g.batch_sizes},
                            {"sampling_kinds", g.kinds},
                            {"position_bound", g.position_bound},
                            {"recorded", g.recorded},
                            {"shapes", g.shapes},
                            {"seconds", g.seconds},
                            {"stopped", g.stopped}};
  report["step_memory"] = {{"max_tokens", r.max_tokens},
                           {"workspace_bytes", r.workspace_bytes},
                           {"kernel_scratch_bytes", r.scratch_bytes},
                           {"kernel_scratch_requested_bytes", r.scratch_requested_bytes},
                           {"kernel_scratch_reserved_bytes", f.reserved_scratch_bytes}};
  if (f.planned_device_bytes > 0) {
    report["device_memory"] = {{"planned_bytes", f.planned_device_bytes},
                               {"free_bytes", f.device_free_bytes}};
  }
  if (f.options.tiers) {
    // Routed (token, expert) pairs since start, warm-up included; the CPU's weights are not in
    // the bytes touched above.
    report["expert_tiers"] = {{"hot_coverage", f.hot_coverage},
                              {"device_pairs", r.hot_pairs},
                              {"cpu_pairs", r.cold_pairs}};
  }
  return report;
}

void print_text(const BenchFlags& f, const V4Config& config, const ForwardBenchmarkResult& r,
                const std::string& synthetic) {
  const double bandwidth = r.bandwidth.bytes_per_second;
  if (synthetic.empty()) {
    std::printf("model: %s (%s of tensors), device %s, %u threads\n", f.model.c_str(),
                format_bytes(r.model_bytes).c_str(), f.device.c_str(), r.threads);
  } else {
    std::printf("model: %s, device %s\n", synthetic.c_str(), f.device.c_str());
  }
  std::printf("token ids: synthetic (fixed pseudo-random sequence, seed %llu), not text\n",
              static_cast<unsigned long long>(f.options.seed));
  std::printf("experts per token: %u of %u\n", config.n_expert_used, config.n_expert);
  std::printf("prefill: %u tokens in %.3f s = %.2f tokens/s\n", r.prefill.tokens, r.prefill.seconds,
              r.prefill.tokens_per_second());
  if (const DecodeGraphCapture& g = r.start_graphs; !g.batch_sizes.empty()) {
    std::printf(
        "decode-step graphs recorded before decode: %llu of %llu in %.3f s (%zu batch sizes from "
        "%lld to %lld, %u sampling kinds, positions below %llu)%s%s\n",
        static_cast<unsigned long long>(g.recorded), static_cast<unsigned long long>(g.shapes),
        g.seconds, g.batch_sizes.size(), static_cast<long long>(g.batch_sizes.back()),
        static_cast<long long>(g.batch_sizes.front()), g.kinds,
        static_cast<unsigned long long>(g.position_bound), g.stopped.empty() ? "" : "; ",
        g.stopped.c_str());
  }
  std::printf(f.options.sampled
                  ? "decode rows are drawn on the device (temperature 1, top-p 0.95; a sampling "
                    "server's rows), not returned as logits\n"
                  : "decode rows return their best token (a greedy server's rows), not their "
                    "logits\n");
  for (const DecodeMeasurement& d : r.decode) {
    std::printf(
        "decode batch %u: %llu tokens (%u steps, %u-token prompts) in %.3f s = %.2f tokens/s\n",
        d.batch, static_cast<unsigned long long>(d.tokens()), d.steps,
        f.options.decode_prompt_tokens, d.seconds, d.tokens_per_second());
    if (d.seconds_without_graphs > 0) {
      std::printf(
          "  step graphs: %llu of %u steps replayed (recording took %.1f ms of the time); "
          "without them %.3f s = %.2f tokens/s (graphs %.2fx)\n",
          static_cast<unsigned long long>(d.replayed_steps), d.steps, d.capture_seconds * 1e3,
          d.seconds_without_graphs, static_cast<double>(d.tokens()) / d.seconds_without_graphs,
          d.seconds_without_graphs / d.seconds);
    }
    if (d.kernel_launches > 0) {
      std::printf("  kernel launches per step (without graphs): %.1f, %.1f per layer\n",
                  d.kernel_launches_per_step(), d.kernel_launches_per_step() / config.n_layer);
    }
    const StepTraffic per_step{d.traffic.matrix_bytes / d.steps,
                               d.traffic.embedding_bytes / d.steps, d.traffic.small_bytes / d.steps,
                               0, d.traffic.routed_expert_bytes / d.steps};
    std::printf(
        "  weights touched per step: %s (matrices %s, of which routed experts %s; embedding "
        "rows %s; small vectors %s); %.2f routed experts per MoE layer per step\n",
        format_bytes(per_step.total()).c_str(), format_bytes(per_step.matrix_bytes).c_str(),
        format_bytes(per_step.routed_expert_bytes).c_str(),
        format_bytes(per_step.embedding_bytes).c_str(), format_bytes(per_step.small_bytes).c_str(),
        d.routed_experts_per_step_layer());
    std::printf(
        "  weights touched per token: %s; achieved %.2f GB/s = %.1f%% of measured "
        "bandwidth\n",
        format_bytes(static_cast<uint64_t>(d.weight_bytes_per_token())).c_str(),
        d.weight_bytes_per_second() / 1e9, percent_of(d.weight_bytes_per_second(), bandwidth));
  }
  if (r.scratch_bytes > 0) {
    std::printf(
        "step memory beyond weights and KV: workspace %s (steps up to %lld tokens) + kernel "
        "scratch %s at its largest = %s\n",
        format_bytes(r.workspace_bytes).c_str(), static_cast<long long>(r.max_tokens),
        format_bytes(r.scratch_bytes).c_str(),
        format_bytes(r.workspace_bytes + r.scratch_bytes).c_str());
    std::printf(
        "  kernel scratch asked for %s at most, of %s reserved before the first step (its "
        "bound)\n",
        format_bytes(r.scratch_requested_bytes).c_str(),
        format_bytes(f.reserved_scratch_bytes).c_str());
  }
  if (f.options.tiers) {
    const uint64_t pairs = r.hot_pairs + r.cold_pairs;
    std::printf(
        "expert tiers: %.1f%% of the routed (token, expert) pairs ran on the CPU from host memory "
        "(their weights are not in the bytes above)\n",
        percent_of(static_cast<double>(r.cold_pairs), static_cast<double>(pairs)));
  }
  if (r.bandwidth.device_copy) {
    std::printf("memory bandwidth: %.2f GB/s (device copy of %s, read + written, best of %u)\n",
                bandwidth / 1e9, format_bytes(r.bandwidth.buffer_bytes).c_str(),
                f.options.bandwidth_repeats);
  } else {
    std::printf(
        "memory bandwidth: %.2f GB/s (streaming float-sum read of %s, %u threads, best of "
        "%u)\n",
        bandwidth / 1e9, format_bytes(r.bandwidth.buffer_bytes).c_str(), r.bandwidth.threads,
        f.options.bandwidth_repeats);
  }
  for (const DecodeMeasurement& d : r.decode) {
    if (d.batch != 1) continue;
    std::printf(
        "batch-1 decode roofline: %s/token × %.2f tokens/s = %.2f GB/s = %.1f%% of %.2f "
        "GB/s\n",
        format_bytes(static_cast<uint64_t>(d.weight_bytes_per_token())).c_str(),
        d.tokens_per_second(), d.weight_bytes_per_second() / 1e9,
        percent_of(d.weight_bytes_per_second(), bandwidth), bandwidth / 1e9);
  }
}

// The model to measure: the file, or the scaled synthetic model (its template kept alive here).
struct BenchModel {
  std::unique_ptr<V4Model> file;
  std::unique_ptr<SyntheticBenchModel> synthetic;
  const V4Model& model() const { return synthetic ? synthetic->template_model() : *file; }
};

// --layers: a count, or "fit" (as many of V4-Flash's layers as fit the device, chosen once the
// device's memory is known).
Status parse_layers(BenchFlags& f) {
  if (f.layers.empty()) return Status::ok();
  if (f.synthetic_preset.empty()) return Status::error("--layers needs --synthetic");
  if (f.layers == "fit") {
    f.fit_layers = true;
    f.synthetic.layers = V4Config{}.n_layer;
    return Status::ok();
  }
  const std::optional<uint32_t> layers = parse_count(f.layers);
  if (!layers)
    return Status::error("--layers: \"" + f.layers +
                         "\" is neither a layer count in 1..4096 nor fit");
  f.synthetic.layers = *layers;
  return Status::ok();
}

Result<BenchModel> open_bench_model(BenchFlags& f) {
  BenchModel m;
  if (Status s = parse_layers(f); !s) return s;
  if (f.synthetic_preset.empty()) {
    if (f.model.empty()) return Status::error("give --model FILE or --synthetic PRESET");
    Result<std::unique_ptr<V4Model>> model = load_v4_model(f.model, "", f.overrides);
    if (!model) return model.status();
    m.file = std::move(*model);
    return m;
  }
  if (!f.model.empty()) return Status::error("--model and --synthetic exclude each other");
  Result<device::DeviceSpec> spec = device::parse_device(f.device);
  if (!spec) return spec.status();
  if (spec->kind == DeviceKind::kCpu && !spec->emulated) {
    return Status::error(
        "--synthetic scales the weights up as they are copied to a device: use --device cuda "
        "(or emulated)");
  }
  if (!spec->emulated) {
    // Asked before the template is written, which takes minutes at full scale.
    Result<device::DeviceMemory> memory = device::device_memory(*spec);
    if (!memory) return Status::error("--device " + f.device + ": " + memory.message());
  }
  SyntheticBenchSpec s = f.synthetic;
  s.preset = f.synthetic_preset;
  s.threads = f.threads;
  Result<std::unique_ptr<SyntheticBenchModel>> model = SyntheticBenchModel::create(s);
  if (!model) return model.status();
  m.synthetic = std::move(*model);
  return m;
}

int run_bench(BenchFlags f) {
  Result<std::vector<uint32_t>> batches = parse_batches(f.batches);
  if (!batches) {
    std::fprintf(stderr, "error: %s\n", batches.message().c_str());
    return 2;
  }
  f.options.batch_sizes = *batches;
  f.options.bandwidth_bytes = uint64_t{f.bandwidth_mib} << 20;
  Result<BenchModel> model = open_bench_model(f);
  if (!model) {
    std::fprintf(stderr, "error: %s\n", model.message().c_str());
    return 1;
  }
  if (f.fit_layers) {
    Result<uint32_t> layers = layers_that_fit(
        f.device, model->synthetic->scaled().weights, model->synthetic->template_layers(),
        [&f](const V4Weights& w) {
          return apps::step_reserve(w, f.options.largest_step(), f.options.max_batch(),
                                    f.options.longest_context());
        });
    if (!layers) {
      std::fprintf(stderr, "error: --layers fit: %s\n", layers.message().c_str());
      return 1;
    }
    model->synthetic->keep_layers(*layers);
  }
  const SyntheticBenchModel* synthetic = model->synthetic.get();
  const V4Weights& host = synthetic ? synthetic->scaled().weights : model->model().weights;
  DeviceWeights::HostMats host_mats;
  if (synthetic) {
    host_mats = [synthetic](const WeightMatrix& m) {
      return replicated_host_mats(synthetic->scaled(), m);
    };
  }
  // The cold experts run from the host's stacks, which a synthetic model only templates.
  Result<std::optional<ExpertTiers>> tiers =
      synthetic && !f.expert_tiers.empty()
          ? Status::error("--expert-tiers " + f.expert_tiers + ": needs --model, not --synthetic")
          : apps::expert_tiers(f.expert_tiers, f.hot_coverage, host.config);
  if (!tiers) {
    std::fprintf(stderr, "error: %s\n", tiers.message().c_str());
    return 2;
  }
  if (*tiers) f.options.tiers = &**tiers;
  const apps::DeviceReserve reserve = apps::step_reserve(
      host, f.options.largest_step(), f.options.max_batch(), f.options.longest_context());
  Result<apps::PreparedDevice> dev = apps::prepare_device(
      f.device, f.threads, host, reserve, UploadProgressTo::kStderr, host_mats, f.options.tiers);
  if (!dev) {
    std::fprintf(stderr, "error: %s\n", dev.message().c_str());
    return 1;
  }
  // The bench runs its own dispatcher over its traffic recorder (ForwardBenchmarkOptions::tiers).
  dev->experts.reset();
  if (dev->resident) {
    f.options.resident_weights = dev->weights;
    f.reserved_scratch_bytes = reserve.scratch_bytes;
    f.planned_device_bytes = dev->planned_bytes;
    f.device_free_bytes = dev->free_bytes;
  }
  Result<ForwardBenchmarkResult> result =
      run_forward_benchmark(model->model(), *dev->backend, f.options);
  if (!result) {
    std::fprintf(stderr, "error: %s\n", result.message().c_str());
    return 1;
  }
  const V4Config& config = dev->weights->config;
  const std::string description = synthetic ? synthetic->describe() : "";
  if (f.json) {
    if (synthetic) f.model = description;
    std::printf("%s\n", report_json(f, config, *result).dump(2).c_str());
  } else {
    print_text(f, config, *result, description);
  }
  return 0;
}

CommandRegistration bench_command(
    "bench", "Measure prefill/decode throughput and decode memory bandwidth use",
    [](CLI::App& sub) {
      auto f = std::make_shared<BenchFlags>();
      sub.add_option("--model", f->model, "model GGUF (first part of a split set)");
      sub.add_option("--synthetic", f->synthetic_preset,
                     "instead of --model: a synthetic model of this preset (flash-shape, small, "
                     "tiny) scaled up on the device from a small template; needs --device");
      sub.add_option("--layers", f->layers,
                     "--synthetic: layers (default: the preset's), or fit: as many of V4-Flash's "
                     "43 as fit the device (the figures per layer hold at any depth)");
      sub.add_option("--experts", f->synthetic.experts,
                     "--synthetic: routed experts (default: the preset's)");
      sub.add_option("--recipe", f->synthetic.recipe,
                     "--synthetic: ds4-q2, ds4-q4, lcpp-mxfp4 or f32")
          ->capture_default_str();
      sub.add_option("--template-experts", f->synthetic.template_experts,
                     "--synthetic: distinct experts generated (the rest are copies)")
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
      sub.add_option("--threads", f->threads, "worker threads (default: one per core)");
      sub.add_option("--device", f->device, apps::kDeviceHelp)->capture_default_str();
      sub.add_option("--prompt-tokens", f->options.prompt_tokens, "prefill length")
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
      sub.add_option("--decode-tokens", f->options.decode_tokens, "timed decode steps per batch")
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
      sub.add_option("--decode-prompt-tokens", f->options.decode_prompt_tokens,
                     "prompt of each decoding sequence (prefilled, untimed)")
          ->capture_default_str();
      sub.add_option("--batch", f->batches, "comma-separated decode batch sizes")
          ->capture_default_str();
      sub.add_flag("--sampled", f->options.sampled,
                   "decode rows drawn on the device (temperature 1, top-p 0.95) instead of greedy");
      sub.add_option("--bandwidth-mib", f->bandwidth_mib, "bandwidth probe buffer (MiB, ≫ LLC)")
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
      sub.add_option("--seed", f->options.seed, "seed of the synthetic token ids")
          ->capture_default_str();
      sub.add_option("--step-graphs", f->options.step_graphs,
                     "decode-step shapes kept recorded on a device backend (0: off); when on, "
                     "decode is also timed without them")
          ->capture_default_str();
      sub.add_option("--graph-capture-seconds", f->options.graph_capture_seconds,
                     "before the decode passes, record every padded batch size up to the largest "
                     "--batch, as a server does at start, within this many seconds (0: on first "
                     "use)")
          ->capture_default_str()
          ->check(CLI::Range(0.0, 3600.0));
      sub.add_option("--experts-per-token", f->overrides.experts_per_token,
                     "routed experts per token (default: the file's expert_used_count)");
      apps::add_expert_tier_flags(sub, f->expert_tiers, f->hot_coverage);
      sub.add_flag("--json", f->json, "print one JSON object instead of the text report");
      return [f] { return run_bench(*f); };
    });

}  // namespace
}  // namespace v4::apps
