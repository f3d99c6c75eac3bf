// `v4serve bench-engine --model FILE`: closed-loop load on the continuous-batching engine. For
// each concurrency level, N requests with fixed prompt/output lengths (synthetic token ids) are
// kept `concurrency` in flight; prints requests/s, output tokens/s, mean batch size and the KV
// bytes each token of context costs in pages. With --speculative-tokens, each level runs once
// per draft count and prints the speed-up over the first count given and the share of drafts
// accepted at each position (docs/design.md, speculative decoding). One untimed request runs
// first.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "apps/command.h"
#include "apps/device_setup.h"
#include "apps/engine_flags.h"
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
  std::string mtp;                       // ds4's separate MTP file
  std::string speculative_tokens = "0";  // draft counts to compare
  uint32_t speculative_max_batch = kDefaultSpeculativeMaxBatch;
  float temperature = 0.0f;  // 0: greedy; else seeded sampling, one seed per request
  int32_t top_k = 0;
  float top_p = 1.0f;
  bool select_candidates = true;  // EngineOptions::select_candidates
  uint32_t step_graphs = 64;      // EngineOptions::step_graphs
};

// A comma-separated list of integers in [low, high], for `flag`.
Result<std::vector<uint32_t>> parse_list(const std::string& text, const char* flag, uint32_t low,
                                         uint32_t high) {
  std::vector<uint32_t> out;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    try {
      size_t used = 0;
      const unsigned long v = std::stoul(item, &used);
      if (used != item.size() || v < low || v > high) throw std::invalid_argument(item);
      out.push_back(static_cast<uint32_t>(v));
    } catch (const std::exception&) {
      return Status::error(std::string(flag) + ": \"" + item + "\" is not an integer in [" +
                           std::to_string(low) + ", " + std::to_string(high) + "]");
    }
  }
  if (out.empty()) return Status::error(std::string(flag) + ": empty list");
  return out;
}

struct LevelResult {
  double seconds = 0.0;
  uint64_t output_tokens = 0;
  EngineStats stats;
};

Result<LevelResult> run_level(const V4Weights& weights, Backend& backend,
                              const EngineOptions& options, const BenchEngineFlags& f,
                              uint32_t speculative) {
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
      q.sampling.temperature = f.temperature;
      q.sampling.top_k = f.top_k;
      q.sampling.top_p = f.top_p;
      q.sampling.seed = submitted;
      q.speculative_tokens = speculative;
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

// One line of the table; the first draft count of a level sets `base_rate` for the speed-up.
void print_row(uint32_t level, uint32_t drafts, const LevelResult& r, const BenchEngineFlags& f,
               const EngineOptions& o, double& base_rate) {
  const EngineStats& s = r.stats;
  const double rate = static_cast<double>(r.output_tokens) / r.seconds;
  if (base_rate == 0.0) base_rate = rate;
  std::string accepted;
  const SpeculativeStats& spec = s.speculative;
  for (size_t p = 0; p < spec.accepted_per_position.size() && spec.drafts > 0 && p < drafts; ++p) {
    char cell[32];
    std::snprintf(
        cell, sizeof cell, "%s%.3f", p ? " " : "",
        static_cast<double>(spec.accepted_per_position[p]) / static_cast<double>(spec.drafts));
    accepted += cell;
  }
  std::printf("%-11u %6u %10.3f %14.2f %8.3f %10.2f %14.1f %11llu %s\n", level, drafts,
              f.requests / r.seconds, rate, rate / base_rate,
              static_cast<double>(s.step_sequences) / static_cast<double>(s.steps),
              static_cast<double>(s.page_bytes) / o.page_tokens,
              static_cast<unsigned long long>(s.preemptions),
              accepted.empty() ? "-" : accepted.c_str());
  // Where steps ran from recordings (a device backend): how many, and what recording cost.
  const StepGraphStats& g = s.step_graphs;
  if (g.captures + g.broken > 0) {
    std::printf(
        "  step graphs: %llu of %llu steps replayed; %llu recorded in %.1f ms (%.2f ms "
        "each), %llu broken, %llu dropped when a buffer moved\n",
        static_cast<unsigned long long>(g.replays), static_cast<unsigned long long>(s.steps),
        static_cast<unsigned long long>(g.captures), g.capture_seconds * 1e3,
        g.capture_seconds * 1e3 / static_cast<double>(g.captures + g.broken),
        static_cast<unsigned long long>(g.broken),
        static_cast<unsigned long long>(g.invalidations));
  }
  std::fflush(stdout);
}

int run_bench_engine(const BenchEngineFlags& f) {
  Result<std::unique_ptr<V4Model>> model = load_v4_model(f.model, f.mtp);
  if (!model) {
    std::fprintf(stderr, "error: %s\n", model.message().c_str());
    return 1;
  }
  Result<KvStorage> storage = kv_storage_from_name(f.kv_storage);
  if (!storage) {
    std::fprintf(stderr, "error: %s\n", storage.message().c_str());
    return 2;
  }
  Result<std::vector<uint32_t>> levels = parse_list(f.concurrency, "--concurrency", 1, 1u << 16);
  Result<std::vector<uint32_t>> drafts =
      parse_list(f.speculative_tokens, "--speculative-tokens", 0, kMaxSpeculativeTokens);
  if (!levels || !drafts) {
    std::fprintf(stderr, "error: %s\n", (levels ? drafts.message() : levels.message()).c_str());
    return 2;
  }
  Result<PreparedDevice> device = prepare_device(
      f.device, f.threads, (*model)->weights,
      engine_reserve((*model)->weights, f.kv_memory_mib << 20, *storage, f.max_batch_tokens,
                     *std::max_element(levels->begin(), levels->end()), f.ctx));
  if (!device) {
    std::fprintf(stderr, "error: %s\n", device.message().c_str());
    return 1;
  }
  Backend& backend = *device->backend;
  if (!(*model)->weights.mtp && *std::max_element(drafts->begin(), drafts->end()) > 0) {
    std::fprintf(stderr, "error: --speculative-tokens needs a model with an MTP block (--mtp)\n");
    return 2;
  }
  // An untimed pass first: the first forwards fault in the mmapped weights and the first pages,
  // and would otherwise count against whichever row runs first (measured: 8.5 against 16.1
  // output tok/s for the same 0-draft row, cold and warm).
  const auto options = [&](uint32_t max_seqs) {
    EngineOptions o;
    o.prefix_caching = f.prefix_caching;
    o.storage = *storage;
    o.kv_memory_bytes = f.kv_memory_mib << 20;
    o.max_context = f.ctx;
    o.max_batch_tokens = f.max_batch_tokens;
    o.max_seqs = max_seqs;
    o.speculative_max_batch = f.speculative_max_batch;
    o.select_candidates = f.select_candidates;
    o.step_graphs = f.step_graphs;
    return o;
  };
  {
    const EngineOptions o = options(1);
    BenchEngineFlags one = f;
    one.requests = 1;
    one.output_len = std::min<uint32_t>(f.output_len, 8);
    const auto start = std::chrono::steady_clock::now();
    Result<LevelResult> r = run_level(*device->weights, backend, o, one,
                                      *std::max_element(drafts->begin(), drafts->end()));
    if (!r) {
      std::fprintf(stderr, "error: %s\n", r.message().c_str());
      return 1;
    }
    std::printf("warm-up: one request in %.2f s (not counted)\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::printf("%-11s %6s %10s %14s %8s %10s %14s %11s %s\n", "concurrency", "drafts", "requests/s",
              "output tok/s", "speed-up", "mean batch", "KV B/token", "preemptions",
              "accepted per draft position");
  for (uint32_t level : *levels) {
    double base_rate = 0.0;
    for (uint32_t k : *drafts) {
      const EngineOptions o = options(level);
      if (Result<uint32_t> pages = EngineCore::pages_for_budget((*model)->weights.config, o);
          !pages) {
        std::fprintf(stderr, "error: %s\n", pages.message().c_str());
        return 2;
      }
      Result<LevelResult> r = run_level(*device->weights, backend, o, f, k);
      if (!r) {
        std::fprintf(stderr, "error: %s\n", r.message().c_str());
        return 1;
      }
      print_row(level, k, *r, f, o, base_rate);
    }
  }
  return 0;
}

CommandRegistration bench_engine_command(
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
      sub.add_option("--mtp", f->mtp, "ds4's separate MTP GGUF")->check(CLI::ExistingFile);
      sub.add_option("--speculative-tokens", f->speculative_tokens,
                     "MTP draft counts to run each level with, e.g. 0,1,2,3 (speed-up relative "
                     "to the first)")
          ->capture_default_str();
      sub.add_option("--speculative-max-batch", f->speculative_max_batch,
                     "steps with more running requests than this verify no drafts (0: no limit)")
          ->capture_default_str();
      sub.add_option("--temperature", f->temperature,
                     "0: greedy; else seeded sampling (a seed per request)")
          ->check(CLI::Range(0.0f, 100.0f))
          ->capture_default_str();
      sub.add_option("--top-k", f->top_k, "sampling's top-k (0: off)")
          ->check(CLI::Range(0, 1 << 20))
          ->capture_default_str();
      sub.add_option("--top-p", f->top_p, "sampling's top-p (1: off)")
          ->check(CLI::Range(0.0f, 1.0f))
          ->capture_default_str();
      sub.add_option("--select-candidates", f->select_candidates,
                     "sampled rows return their best tokens, not their logits, where the "
                     "sampler allows (the same tokens either way)")
          ->capture_default_str();
      sub.add_option("--step-graphs", f->step_graphs,
                     "decode-step shapes kept recorded on a device backend (0: off)")
          ->check(CLI::Range(0u, 4096u))
          ->capture_default_str();
      sub.add_flag("--prefix-caching", f->prefix_caching,
                   "share cached pages of equal prompt prefixes between requests");
      return [f] { return run_bench_engine(*f); };
    });

}  // namespace
}  // namespace v4::apps
