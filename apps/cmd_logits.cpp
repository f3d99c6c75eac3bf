// `v4serve logits --model FILE --tokens 0,1,2`: runs the forward pass over the ids and prints one
// JSON line per position with the top-20 (id, logit) pairs and the full-vocabulary logsumexp.
// --chunk N prefills in chunks of N tokens, --decode feeds one token per step.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "apps/command.h"
#include "apps/device_setup.h"
#include "model/v4/v4_forward.h"
#include "model/v4/v4_forward_model.h"

namespace v4::apps {
namespace {

struct LogitsFlags {
  std::string model;
  std::string tokens;
  uint32_t chunk = 0;
  bool decode = false;
  unsigned threads = 0;
  std::string device = "cpu";
  V4ConfigOverrides overrides;
  std::string raw;  // optional float32 dump of every logit, row-major by position
};

bool parse_ids(const std::string& text, std::vector<int32_t>& out) {
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      out.push_back(static_cast<int32_t>(std::stol(item)));
    } catch (...) {
      return false;
    }
  }
  return !out.empty();
}

void print_position(size_t pos, const float* logits, size_t n_vocab) {
  std::vector<int32_t> ids(n_vocab);
  std::iota(ids.begin(), ids.end(), 0);
  const size_t top = std::min<size_t>(20, n_vocab);
  std::partial_sort(ids.begin(), ids.begin() + top, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  double sum = 0.0;
  const double mx = logits[ids[0]];
  for (size_t i = 0; i < n_vocab; ++i) sum += std::exp(logits[i] - mx);
  std::printf("{\"pos\":%zu,\"top\":[", pos);
  for (size_t i = 0; i < top; ++i) {
    std::printf("%s[%d,%.9g]", i ? "," : "", ids[i], static_cast<double>(logits[ids[i]]));
  }
  std::printf("],\"logsumexp\":%.9g}\n", mx + std::log(sum));
}

int run_logits(const LogitsFlags& f) {
  std::vector<int32_t> tokens;
  if (!parse_ids(f.tokens, tokens)) {
    std::fprintf(stderr, "error: --tokens wants comma-separated token ids\n");
    return 2;
  }
  Result<std::unique_ptr<V4Model>> model = load_v4_model(f.model, "", f.overrides);
  if (!model) {
    std::fprintf(stderr, "error: %s\n", model.message().c_str());
    return 1;
  }
  const V4Config& c = (*model)->weights.config;
  const size_t chunk = f.decode ? 1 : f.chunk ? f.chunk : tokens.size();
  Result<apps::PreparedDevice> dev = apps::prepare_device(
      f.device, f.threads, (*model)->weights,
      apps::step_reserve((*model)->weights, static_cast<int64_t>(std::min(chunk, tokens.size())), 1,
                         static_cast<int64_t>(tokens.size())));
  if (!dev) {
    std::fprintf(stderr, "error: %s\n", dev.message().c_str());
    return 1;
  }
  Backend& backend = *dev->backend;
  V4Forward forward(*dev->weights, backend);
  ContiguousKvState state(c, backend);
  std::FILE* raw = f.raw.empty() ? nullptr : std::fopen(f.raw.c_str(), "wb");
  if (!f.raw.empty() && !raw) {
    std::fprintf(stderr, "error: cannot write %s\n", f.raw.c_str());
    return 1;
  }
  for (size_t first = 0; first < tokens.size(); first += chunk) {
    const size_t n = std::min(chunk, tokens.size() - first);
    SequenceInput in{&state, std::span<const int32_t>(tokens).subspan(first, n), true};
    Result<ForwardOutput> out = forward.forward({&in, 1});
    if (!out) {
      std::fprintf(stderr, "error: %s\n", out.message().c_str());
      return 1;
    }
    for (size_t i = 0; i < n; ++i)
      print_position(first + i, &out->logits[i * c.n_vocab], c.n_vocab);
    if (raw) std::fwrite(out->logits.data(), sizeof(float), out->logits.size(), raw);
  }
  if (raw) std::fclose(raw);
  return 0;
}

CommandRegistration logits_command(
    "logits", "Print top-20 logits and logsumexp per position for a list of token ids",
    [](CLI::App& sub) {
      auto f = std::make_shared<LogitsFlags>();
      sub.add_option("--model", f->model, "model GGUF (first part of a split set)")->required();
      sub.add_option("--tokens", f->tokens, "comma-separated token ids")->required();
      sub.add_option("--chunk", f->chunk, "prefill chunk size (default: all tokens at once)");
      sub.add_flag("--decode", f->decode, "feed one token per forward step");
      sub.add_option("--threads", f->threads, "worker threads (default: one per core)");
      sub.add_option("--device", f->device, apps::kDeviceHelp)->capture_default_str();
      sub.add_option("--experts-per-token", f->overrides.experts_per_token,
                     "routed experts per token (default: the file's expert_used_count)");
      sub.add_option("--raw", f->raw, "also write all logits as float32, row-major by position");
      return [f] { return run_logits(*f); };
    });

}  // namespace
}  // namespace v4::apps
