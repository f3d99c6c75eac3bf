// `v4serve generate --model FILE -p TEXT -n N`: tokenizes the prompt (BOS first), prefills it,
// then samples N tokens, streaming the text to stdout; prefill and decode tokens/s go to stderr.
// `--tokens 0,1,2` gives the prompt as ids instead of text.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "apps/command.h"
#include "apps/device_setup.h"
#include "model/chat/chat_encoder.h"
#include "model/chat/chat_request.h"
#include "model/sampling/sampling.h"
#include "model/text/detokenizer.h"
#include "model/text/tokenizer.h"
#include "model/v4/v4_forward.h"
#include "model/v4/v4_forward_model.h"

namespace v4::apps {
namespace {

struct GenerateFlags {
  std::string model;
  std::string prompt;
  std::string tokens;
  uint32_t n_predict = 32;
  SamplingOptions sampling;
  unsigned threads = 0;
  std::string device = "cpu";
  V4ConfigOverrides overrides;
  bool no_bos = false;
  bool print_ids = false;
  bool chat = false;
  bool think = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Result<std::vector<int32_t>> prompt_tokens(const GenerateFlags& f, const Tokenizer& tok) {
  std::vector<int32_t> ids;
  if (!f.no_bos && tok.bos_id() >= 0) ids.push_back(tok.bos_id());
  if (!f.tokens.empty()) {
    std::stringstream ss(f.tokens);
    std::string item;
    while (std::getline(ss, item, ',')) {
      try {
        ids.push_back(static_cast<int32_t>(std::stol(item)));
      } catch (...) {
        return Status::error("--tokens: \"" + item + "\" is not a token id");
      }
    }
  } else if (f.chat) {
    // The prompt is one user turn rendered with the V4 DSML encoder (spec §5.8); the rendered
    // text starts with the BOS token itself.
    ChatRequest request;
    ChatMessage turn;
    turn.role = "user";
    turn.content = f.prompt;
    request.messages.push_back(std::move(turn));
    request.thinking = f.think;
    Result<std::string> text = render_chat_prompt(request);
    if (!text) return text.status();
    ids = tok.encode(*text, true);
  } else {
    const std::vector<TokenId> text = tok.encode(f.prompt, true);
    ids.insert(ids.end(), text.begin(), text.end());
  }
  if (ids.empty()) return Status::error("empty prompt");
  return ids;
}

int run_generate(const GenerateFlags& f) {
  Result<std::unique_ptr<V4Model>> model = load_v4_model(f.model, "", f.overrides);
  if (!model) {
    std::fprintf(stderr, "error: %s\n", model.message().c_str());
    return 1;
  }
  Result<Tokenizer> tok = Tokenizer::from_gguf((*model)->file);
  if (!tok) {
    std::fprintf(stderr, "error: %s\n", tok.message().c_str());
    return 1;
  }
  Result<std::vector<int32_t>> prompt = prompt_tokens(f, *tok);
  if (!prompt) {
    std::fprintf(stderr, "error: %s\n", prompt.message().c_str());
    return 2;
  }
  Result<apps::PreparedDevice> dev = apps::prepare_device(
      f.device, f.threads, (*model)->weights,
      apps::step_reserve((*model)->weights, static_cast<int64_t>(prompt->size()), 1,
                         static_cast<int64_t>(prompt->size()) + f.n_predict));
  if (!dev) {
    std::fprintf(stderr, "error: %s\n", dev.message().c_str());
    return 1;
  }
  Backend& backend = *dev->backend;
  V4Forward forward(*dev->weights, backend);
  ContiguousKvState state((*model)->weights.config, backend);
  Sampler sampler(f.sampling);
  IncrementalDetokenizer detok(*tok);

  auto start = std::chrono::steady_clock::now();
  SequenceInput in{&state, *prompt};
  Result<ForwardOutput> out = forward.forward({&in, 1});
  if (!out) {
    std::fprintf(stderr, "error: %s\n", out.message().c_str());
    return 1;
  }
  const double prefill_s = seconds_since(start);
  start = std::chrono::steady_clock::now();
  uint32_t generated = 0;
  for (; generated < f.n_predict; ++generated) {
    const int32_t next = sampler.sample(out->logits);
    if (f.print_ids)
      std::printf("%s%d", generated ? "," : "", next);
    else
      std::fputs(detok.push(next).c_str(), stdout);
    std::fflush(stdout);
    if (next == tok->eos_id() || generated + 1 == f.n_predict) {
      ++generated;
      break;
    }
    in.tokens = std::span<const int32_t>(&next, 1);
    out = forward.forward({&in, 1});
    if (!out) {
      std::fprintf(stderr, "\nerror: %s\n", out.message().c_str());
      return 1;
    }
  }
  if (!f.print_ids) std::fputs(detok.finish().c_str(), stdout);
  const double decode_s = seconds_since(start);
  std::printf("\n");
  std::fprintf(stderr, "prefill: %zu tokens in %.3f s (%.2f tokens/s)\n", prompt->size(), prefill_s,
               static_cast<double>(prompt->size()) / prefill_s);
  std::fprintf(stderr, "decode: %u tokens in %.3f s (%.2f tokens/s)\n", generated, decode_s,
               generated / decode_s);
  return 0;
}

CommandRegistration generate_command(
    "generate", "Generate text with the CPU forward pass", [](CLI::App& sub) {
      auto f = std::make_shared<GenerateFlags>();
      sub.add_option("--model", f->model, "model GGUF (first part of a split set)")->required();
      sub.add_option("-p,--prompt", f->prompt, "prompt text (special tokens honoured)");
      sub.add_option("--tokens", f->tokens, "prompt as comma-separated token ids instead");
      sub.add_option("-n,--n-predict", f->n_predict, "tokens to generate")->capture_default_str();
      sub.add_option("--temp", f->sampling.temperature, "temperature (0: greedy)")
          ->capture_default_str();
      sub.add_option("--top-p", f->sampling.top_p, "nucleus threshold")->capture_default_str();
      sub.add_option("--top-k", f->sampling.top_k, "keep the k best tokens (0: off)");
      sub.add_option("--min-p", f->sampling.min_p, "drop tokens below min_p × best probability");
      sub.add_option("--seed", f->sampling.seed, "sampling seed")->capture_default_str();
      sub.add_option("--threads", f->threads, "worker threads (default: one per core)");
      sub.add_option("--device", f->device, apps::kDeviceHelp)->capture_default_str();
      sub.add_option("--experts-per-token", f->overrides.experts_per_token,
                     "routed experts per token (default: the file's expert_used_count)");
      sub.add_flag("--no-bos", f->no_bos, "do not prepend the BOS token");
      sub.add_flag("--chat", f->chat, "render the prompt as a user turn of the V4 chat format");
      sub.add_flag("--think", f->think, "with --chat: thinking mode (the turn opens <think>)");
      sub.add_flag("--ids", f->print_ids, "print token ids instead of text");
      return [f] { return run_generate(*f); };
    });

}  // namespace
}  // namespace v4::apps
