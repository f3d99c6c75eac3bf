#include "apps/synthetic_bench_model.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "apps/tokenizer_location.h"
#include "model/synthetic/synthetic_model.h"

namespace v4::apps {
namespace {

// Layers 0..4 hold every kind the presets use (spec §3.4, §3.5): raw-window and hash-routed,
// ratio 4 hash-routed, ratio 128, ratio 4.
constexpr uint32_t kTemplateLayers = 5;

Result<std::filesystem::path> make_temp_dir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "v4serve-bench-XXXXXX").string();
  if (!mkdtemp(pattern.data())) return Status::error("cannot create a temporary directory");
  return std::filesystem::path(pattern);
}

}  // namespace

SyntheticBenchModel::~SyntheticBenchModel() {
  template_.reset();  // unmaps the file before it is removed
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

Result<std::unique_ptr<SyntheticBenchModel>> SyntheticBenchModel::create(
    const SyntheticBenchSpec& spec) {
  Result<V4Config> target = synthetic_preset(spec.preset, spec.layers, spec.experts);
  if (!target) return target.status();
  const std::optional<Recipe> recipe = recipe_from_name(spec.recipe);
  if (!recipe) return Status::error("unknown recipe \"" + spec.recipe + "\"");
  const uint32_t t_experts = std::min(spec.template_experts, target->n_expert);
  if (t_experts == 0 || target->n_expert % t_experts != 0) {
    return Status::error(std::to_string(target->n_expert) + " experts are not a multiple of " +
                         "--template-experts " + std::to_string(spec.template_experts));
  }
  if (t_experts < target->n_expert_used) {
    return Status::error("--template-experts " + std::to_string(t_experts) +
                         " is fewer than the experts per token (" +
                         std::to_string(target->n_expert_used) + ")");
  }
  const uint32_t t_layers = std::min(kTemplateLayers, target->n_layer);
  Result<V4Config> tmpl = synthetic_preset(spec.preset, t_layers, t_experts);
  if (!tmpl) return tmpl.status();
  Result<std::string> tokenizer = locate_tokenizer_json("");
  if (!tokenizer) return tokenizer.status();

  auto out = std::unique_ptr<SyntheticBenchModel>(new SyntheticBenchModel());
  out->spec_ = spec;
  out->template_layers_ = t_layers;
  Result<std::filesystem::path> dir = make_temp_dir();
  if (!dir) return dir.status();
  out->dir_ = *dir;
  SyntheticModelOptions o;
  o.config = *tmpl;
  o.recipe = *recipe;
  o.out_path = (out->dir_ / "template.gguf").string();
  o.tokenizer_json = *tokenizer;
  o.seed = spec.seed;
  o.threads = spec.threads;
  const auto start = std::chrono::steady_clock::now();
  std::fprintf(stderr, "writing the template (%u layers, %u experts, %s) ...\n", t_layers,
               t_experts, spec.recipe.c_str());
  if (Result<std::vector<std::string>> w = write_synthetic_model(o); !w) return w.status();
  out->write_seconds_ =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Result<std::unique_ptr<V4Model>> model = load_v4_model(o.out_path);
  if (!model) return model.status();
  out->template_ = std::move(*model);
  Result<ReplicatedWeights> scaled = replicate_weights(out->template_->weights, *target, spec.seed);
  if (!scaled) return scaled.status();
  out->scaled_ = std::move(*scaled);
  out->asked_layers_ = target->n_layer;
  return out;
}

void SyntheticBenchModel::keep_layers(uint32_t n) {
  scaled_.weights = first_layers(scaled_.weights, n);
}

std::string SyntheticBenchModel::describe() const {
  const V4Config& c = scaled_.weights.config;
  char cut[128] = "";
  if (c.n_layer < asked_layers_) {
    std::snprintf(cut, sizeof(cut), " (the first %u of %u: as many as fit the device)", c.n_layer,
                  asked_layers_);
  }
  char text[640];
  std::snprintf(text, sizeof(text),
                "synthetic %s, %u layers%s, %u experts, %s (template of %u layers and %lld "
                "experts written in %.0f s; each layer a copy of the template layer of its kind, "
                "expert e a copy of template expert e mod %lld, routers generated for all %u)",
                spec_.preset.c_str(), c.n_layer, cut, c.n_expert, spec_.recipe.c_str(),
                template_layers_, static_cast<long long>(scaled_.template_experts), write_seconds_,
                static_cast<long long>(scaled_.template_experts), c.n_expert);
  return text;
}

}  // namespace v4::apps
