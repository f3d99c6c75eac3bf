// `v4serve bench-engine --model FILE`: closed-loop load on the continuous-batching engine. For
// each concurrency level, N requests with fixed prompt/output lengths (synthetic token ids) are
// kept `concurrency` in flight; prints requests/s, output tokens/s, mean batch size and the KV
// bytes each token of context costs in pages.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "apps/command.h"
#include "apps/device_setup.h"
#include "model/v4/v4_forward_model.h"
#include "worker/engine_core.h"

namespace v4::apps {
namespace {

struct BenchEngineFlags {
  std::string model;
  uint32_t requests = 64;
  uint32_t prompt_len = 128;
  uint32_t output_len = 32;
  std::string concurrency = "1,4,16,64";
  uint64_t kv_memory_mib = 1024;
  uint32_t ctx = 4096;
  uint32_t max_batch_tokens = 256;
  std::string kv_storage = "f32";
  unsigned threads = 0;
  std::string device = "cpu";
  bool prefix_caching = false;
};

struct LevelResult {
  double seconds = 0.0;
  uint64_t output_tokens = 0;
  EngineStats stats;
};

Result<LevelResult> run_level(const V4Weights& weights, Backend& backend,
                              const EngineOptions& options, const BenchEngineFlags& f) {
  EngineCore core(weights, backend, options);
  const uint32_t vocab = weights.config.n_vocab;
  uint32_t submitted = 0, finished = 0;
  LevelResult r;
  const auto start = std::chrono::steady_clock::now();
  while (finished < f.requests) {
    while (submitted < f.requests && submitted - finished < options.max_seqs) {
      GenerationRequest q;
      for (uint32_t i = 0; i < f.prompt_len; ++i)
        q.prompt.push_back(static_cast<int32_t>((i * 7919u + submitted * 104729u + 1) % vocab));
      q.sampling.max_tokens = f.output_len;
      Result<RequestId> id = core.add(q);
      if (!id) return id.status();
      ++submitted;
    }
    for (const GenerationEvent& e : core.step()) {
      if (e.token >= 0) ++r.output_tokens;
      if (e.finish == FinishReason::kError) return Status::error("a request failed");
      if (e.finish != FinishReason::kNone) ++finished;
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.stats = core.stats();
  return r;
}

int run_bench_engine(const BenchEngineFlags& f) {
  Result<std::unique_ptr<V4Model>> model = load_v4_model(f.model);
  if (!model) {
    std::fprintf(stderr, "error: %s\n", model.message().c_str());
    return 1;
  }
  Result<KvStorage> storage = kv_storage_from_name(f.kv_storage);
  if (!storage) {
    std::fprintf(stderr, "error: %s\n", storage.message().c_str());
    return 2;
  }
  Result<PreparedDevice> device =
      prepare_device(f.device, f.threads, (*model)->weights, f.kv_memory_mib << 20);
  if (!device) {
    std::fprintf(stderr, "error: %s\n", device.message().c_str());
    return 1;
  }
  Backend& backend = *device->backend;
  std::printf("%-11s %10s %14s %10s %14s %11s\n", "concurrency", "requests/s", "output tok/s",
              "mean batch", "KV B/token", "preemptions");
  std::stringstream levels(f.concurrency);
  std::string item;
  while (std::getline(levels, item, ',')) {
    uint32_t level = 0;
    try {
      size_t used = 0;
      level = static_cast<uint32_t>(std::stoul(item, &used));
      if (used != item.size() || level == 0) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      std::fprintf(stderr, "error: --concurrency: \"%s\" is not a positive integer\n",
                   item.c_str());
      return 2;
    }
    EngineOptions o;
    o.prefix_caching = f.prefix_caching;
    o.storage = *storage;
    o.kv_memory_bytes = f.kv_memory_mib << 20;
    o.max_context = f.ctx;
    o.max_batch_tokens = f.max_batch_tokens;
    o.max_seqs = level;
    if (Result<uint32_t> pages = EngineCore::pages_for_budget((*model)->weights.config, o);
        !pages) {
      std::fprintf(stderr, "error: %s\n", pages.message().c_str());
      return 2;
    }
    Result<LevelResult> r = run_level(*device->weights, backend, o, f);
    if (!r) {
      std::fprintf(stderr, "error: %s\n", r.message().c_str());
      return 1;
    }
    const EngineStats& s = r->stats;
    std::printf("%-11s %10.3f %14.2f %10.2f %14.1f %11llu\n", item.c_str(), f.requests / r->seconds,
                static_cast<double>(r->output_tokens) / r->seconds,
                static_cast<double>(s.step_sequences) / static_cast<double>(s.steps),
                static_cast<double>(s.page_bytes) / o.page_tokens,
                static_cast<unsigned long long>(s.preemptions));
    std::fflush(stdout);
  }
  return 0;
}

CommandRegistration registration(
    "bench-engine", "Throughput of the continuous-batching engine at several concurrencies",
    [](CLI::App& sub) {
      auto f = std::make_shared<BenchEngineFlags>();
      sub.add_option("--model", f->model, "model GGUF")->required();
      sub.add_option("-n,--requests", f->requests, "requests per level")->capture_default_str();
      sub.add_option("--prompt-len", f->prompt_len, "prompt tokens")->capture_default_str();
      sub.add_option("--output-len", f->output_len, "output tokens")->capture_default_str();
      sub.add_option("--concurrency", f->concurrency, "levels")->capture_default_str();
      sub.add_option("--kv-memory", f->kv_memory_mib, "KV budget in MiB")->capture_default_str();
      sub.add_option("--ctx", f->ctx, "per-request context limit")->capture_default_str();
      sub.add_option("--max-batch-tokens", f->max_batch_tokens, "tokens per step")
          ->capture_default_str();
      sub.add_option("--kv-storage", f->kv_storage, "f32, f16 or fp8")->capture_default_str();
      sub.add_option("--threads", f->threads, "worker threads (default: one per core)");
      sub.add_option("--device", f->device, kDeviceHelp)->capture_default_str();
      sub.add_flag("--prefix-caching", f->prefix_caching,
                   "share cached pages of equal prompt prefixes between requests");
      return [f] { return run_bench_engine(*f); };
    });

}  // namespace
}  // namespace v4::apps
