// `v4serve render --model FILE`: an OpenAI-style chat request (messages, tools, thinking,
// reasoning_effort, task, dsml_replay) on stdin -> the exact DeepSeek-V4 prompt text on stdout
// (spec §5.8). With --ids, the prompt's token ids instead (special tokens honoured), which needs
// the model's tokenizer; without it the model file is only checked to exist.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/command.h"
#include "model/chat/chat_encoder.h"
#include "model/chat/chat_request.h"
#include "model/gguf/gguf_reader.h"
#include "model/text/tokenizer.h"

namespace v4::apps {
namespace {

struct RenderOptions {
  std::string model;
  bool ids = false;
};

int render_failed(const std::string& message) {
  std::fprintf(stderr, "v4serve render: %s\n", message.c_str());
  return 1;
}

int run_render(const RenderOptions& options) {
  if (!options.model.empty() && !std::filesystem::exists(options.model)) {
    return render_failed(options.model + ": no such file");
  }
  const std::string input((std::istreambuf_iterator<char>(std::cin)),
                          std::istreambuf_iterator<char>());
  Result<ChatRequest> request = parse_chat_request(input);
  if (!request) return render_failed(request.message());
  Result<std::string> prompt = render_chat_prompt(*request);
  if (!prompt) return render_failed(prompt.message());
  if (!options.ids) {
    std::fwrite(prompt->data(), 1, prompt->size(), stdout);
    return 0;
  }
  if (options.model.empty()) return render_failed("--ids needs --model");
  Result<GgufFile> file = GgufFile::open(options.model);
  if (!file) return render_failed(file.message());
  Result<Tokenizer> tokenizer = Tokenizer::from_gguf(*file);
  if (!tokenizer) return render_failed(tokenizer.message());
  std::cout << nlohmann::json(tokenizer->encode(*prompt, /*allow_special=*/true)).dump() << '\n';
  return 0;
}

const CommandRegistration kRenderCommand{
    "render", "Chat request JSON on stdin -> DeepSeek-V4 prompt text", [](CLI::App& sub) {
      auto options = std::make_shared<RenderOptions>();
      sub.add_option("--model", options->model, "GGUF model file");
      sub.add_flag("--ids", options->ids, "print the prompt's token ids instead of its text");
      return [options] { return run_render(*options); };
    }};

}  // namespace
}  // namespace v4::apps
