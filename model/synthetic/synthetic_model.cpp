#include "model/synthetic/synthetic_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <thread>

#include "kernels/cpu/quant.h"
#include "model/text/hf_tokenizer_conversion.h"
#include "model/v4/v4_schema.h"

namespace v4 {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t name_hash(const std::string& name) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001B3ull;
  return h;
}

// Value = mean + uniform(-half_width, half_width).
struct WeightInit {
  float mean;
  float half_width;
};

// Uniform(-a, a) has standard deviation a/sqrt(3).
constexpr float kSqrt3 = 1.7320508f;

WeightInit weight_init(const std::string& name, TensorRole role, uint64_t fan_in) {
  const float unit = kSqrt3 / std::sqrt(static_cast<float>(std::max<uint64_t>(fan_in, 1)));
  if (role == TensorRole::kSmall) {
    // Norm weights near 1; HC scales moderate so pre/post gates and Sinkhorn logits vary without
    // saturating; sinks O(1) like trained sink logits; router bias small (selection only).
    if (name.ends_with("norm.weight")) return {1.0f, 0.1f};
    if (name.ends_with("_scale.weight")) return {0.5f, 0.1f};
    if (name.ends_with("_base.weight")) return {0.0f, 0.5f};
    if (name.ends_with("attn_sinks.weight")) return {0.0f, 1.0f};
    return {0.0f, 0.1f};  // exp_probs_b
  }
  switch (role) {
    case TensorRole::kEmbedding:
      return {0.0f, kSqrt3};  // unit variance rows
    case TensorRole::kCompressorApe:
      return {0.0f, 0.1f};
    // Output projections feed the residual streams: half scale keeps their sum over layers tame.
    case TensorRole::kExpertDown:
      return {0.0f, 0.5f * unit};
    default:
      if (name.ends_with("attn_output_b.weight") || name.ends_with("ffn_down_shexp.weight")) {
        return {0.0f, 0.5f * unit};
      }
      return {0.0f, unit};
  }
}

uint64_t tensor_seed(const std::string& name, uint64_t seed) {
  return splitmix64(seed ^ name_hash(name));
}

// How one tensor's values are made: uniform values seeded by a name, or a fixed matrix.
struct TensorValues {
  enum class Kind { kUniform, kIdentity, kZero };
  Kind kind = Kind::kUniform;
  std::string seed_name;
  WeightInit init{0.0f, 0.0f};
};

bool is_mtp_tensor(const std::string& name, uint32_t n_layer) {
  return name.starts_with("mtp.") || name.starts_with("blk." + std::to_string(n_layer) + ".");
}

// SyntheticModelOptions::mtp_agrees: see its comment for what each rule is for.
TensorValues tensor_values(const TensorSpec& spec, const SyntheticModelOptions& o) {
  const std::string& name = spec.name;
  TensorValues v{TensorValues::Kind::kUniform, name, weight_init(name, spec.role, spec.dims[0])};
  if (!o.mtp_agrees) return v;
  if (name.ends_with("attn_output_b.weight") || name.ends_with("ffn_down_shexp.weight") ||
      spec.role == TensorRole::kExpertDown) {
    v.init.half_width *= 1e-3f;
  }
  if (!is_mtp_tensor(name, o.config.n_layer)) return v;
  if (name.ends_with("e_proj.weight") || name.ends_with("eh_proj.weight")) {
    v.kind = TensorValues::Kind::kIdentity;  // eh_proj: [e | h] inputs, the e half passes
  } else if (name.ends_with("h_proj.weight")) {
    v.kind = TensorValues::Kind::kZero;
  } else if (name.ends_with("enorm.weight")) {
    v.init = {1.0f, 0.0f};
  } else if (name.ends_with("shared_head_norm.weight") || name == "mtp.0.norm.weight") {
    v.seed_name = "output_norm.weight";
  } else if (const size_t at = name.find("hc_head_"); at != std::string::npos) {
    v.seed_name = "output_hc_" + name.substr(at + 8);
  }
  return v;
}

float uniform_value(uint64_t tseed, uint64_t index, WeightInit init) {
  const uint64_t bits = splitmix64(tseed + index);
  const float u = static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);  // [0, 1)
  return init.mean + (2.0f * u - 1.0f) * init.half_width;
}

// Streams a float tensor: generates row chunks, converts them to the target type on all
// threads, and writes each chunk before generating the next.
class GeneratedTensorSource {
 public:
  GeneratedTensorSource(TensorSpec spec, GgmlType type, TensorValues values, uint64_t seed,
                        unsigned threads)
      : spec_(std::move(spec)),
        type_(type),
        seed_(tensor_seed(values.seed_name, seed)),
        values_(std::move(values)),
        threads_(threads) {}

  Status operator()(GgufByteSink& sink) const {
    const uint64_t row_len = spec_.dims[0];
    uint64_t rows = 1;
    for (size_t i = 1; i < spec_.dims.size(); ++i) rows *= spec_.dims[i];
    const uint64_t row_bytes = *ggml_row_size(type_, row_len);
    const uint64_t chunk_rows = std::max<uint64_t>(1, (uint64_t{4} << 20) / row_len);
    std::vector<uint8_t> out(chunk_rows * row_bytes);
    for (uint64_t first = 0; first < rows; first += chunk_rows) {
      const uint64_t n = std::min(chunk_rows, rows - first);
      parallel_rows(n, [&](uint64_t lo, uint64_t hi) {
        std::vector<float> row(row_len);
        for (uint64_t r = lo; r < hi; ++r) {
          const uint64_t base = (first + r) * row_len;
          for (uint64_t j = 0; j < row_len; ++j) row[j] = value(first + r, j, base + j);
          kernels::quantize_row(type_, row.data(), out.data() + r * row_bytes,
                                static_cast<int64_t>(row_len));
        }
      });
      if (Status s = sink.write({out.data(), n * row_bytes}); !s) return s;
    }
    return Status::ok();
  }

 private:
  template <class Fn>
  void parallel_rows(uint64_t n, Fn fn) const {
    const unsigned workers = static_cast<unsigned>(std::min<uint64_t>(threads_, n));
    if (workers <= 1) return fn(0, n);
    std::vector<std::thread> pool;
    for (unsigned w = 0; w < workers; ++w) {
      pool.emplace_back(fn, n * w / workers, n * (w + 1) / workers);
    }
    for (std::thread& t : pool) t.join();
  }

  float value(uint64_t row, uint64_t column, uint64_t index) const {
    switch (values_.kind) {
      case TensorValues::Kind::kIdentity:
        return row == column ? 1.0f : 0.0f;
      case TensorValues::Kind::kZero:
        return 0.0f;
      case TensorValues::Kind::kUniform:
        break;
    }
    return uniform_value(seed_, index, values_.init);
  }

  TensorSpec spec_;
  GgmlType type_;
  uint64_t seed_;
  TensorValues values_;
  unsigned threads_;
};

// Hash routing table (§3.5): for each token id, top-k distinct experts.
GgufTensorSource hash_table_source(const TensorSpec& spec, uint32_t n_expert, uint64_t seed) {
  const uint64_t tseed = tensor_seed(spec.name, seed);
  const uint64_t k = spec.dims[0], vocab = spec.dims[1];
  return [=](GgufByteSink& sink) -> Status {
    std::vector<int32_t> experts(n_expert);
    std::vector<int32_t> rows(k * 4096);
    for (uint64_t first = 0; first < vocab; first += 4096) {
      const uint64_t n = std::min<uint64_t>(4096, vocab - first);
      for (uint64_t t = 0; t < n; ++t) {
        std::iota(experts.begin(), experts.end(), 0);
        uint64_t state = splitmix64(tseed + first + t);
        for (uint64_t i = 0; i < k; ++i) {  // partial Fisher–Yates
          state = splitmix64(state);
          const uint64_t j = i + state % (n_expert - i);
          std::swap(experts[i], experts[j]);
          rows[t * k + i] = experts[i];
        }
      }
      const auto* bytes = reinterpret_cast<const uint8_t*>(rows.data());
      if (Status s = sink.write({bytes, n * k * sizeof(int32_t)}); !s) return s;
    }
    return Status::ok();
  };
}

Status add_tensors(GgufWriter& writer, const std::vector<TensorSpec>& specs,
                   const SyntheticModelOptions& o, unsigned threads) {
  for (const TensorSpec& spec : specs) {
    const GgmlType type = recipe_dtype(o.recipe, spec.role);
    GgufTensorSource source = spec.role == TensorRole::kHashTable
                                  ? hash_table_source(spec, o.config.n_expert, o.seed)
                                  : GgufTensorSource(GeneratedTensorSource(
                                        spec, type, tensor_values(spec, o), o.seed, threads));
    if (Status s = writer.add_tensor(spec.name, type, spec.dims, std::move(source)); !s) {
      return Status::error("recipe " + std::string(recipe_name(o.recipe)) + ": " + s.message());
    }
  }
  return Status::ok();
}

std::string mtp_path_for(const std::string& out) {
  std::filesystem::path p(out);
  return (p.parent_path() / (p.stem().string() + "-mtp.gguf")).string();
}

}  // namespace

float synthetic_weight(const std::string& name, TensorRole role, uint64_t fan_in, uint64_t seed,
                       uint64_t index) {
  return uniform_value(tensor_seed(name, seed), index, weight_init(name, role, fan_in));
}

Result<V4Config> synthetic_preset(std::string_view preset, uint32_t layers, uint32_t experts) {
  V4Config c;  // defaults are the real model (spec §1)
  if (preset == "tiny") {
    // Six layers so every kind appears: raw-window 0,1; ratio 4 (with indexer) 2,4; ratio 128
    // 3,5; hash routing on 0..2. Indexer top-k 16 so ~100 tokens already exercise selection.
    c.n_layer = 6;
    c.n_embd = 256;
    c.n_head = 8;
    c.head_dim = 64;
    c.rope_dim = 16;
    c.q_lora_rank = 128;
    c.o_lora_rank = 64;
    c.o_groups = 2;
    c.n_expert = 16;
    c.n_ff_exp = 256;
    c.indexer_n_head = 4;
    c.indexer_head_dim = 64;
    c.indexer_top_k = 16;
    c.sliding_window = 64;
  } else if (preset == "small") {
    c.n_layer = 8;
    c.n_embd = 1024;
    c.n_head = 16;
    c.head_dim = 128;
    c.rope_dim = 32;
    c.q_lora_rank = 256;
    c.o_lora_rank = 256;
    c.o_groups = 4;
    c.n_expert = 32;
    c.n_ff_exp = 512;
    c.indexer_n_head = 8;
    c.indexer_head_dim = 128;
    c.indexer_top_k = 64;
  } else if (preset == "flash-shape") {
    c.n_layer = 4;
    c.n_expert = 32;
  } else {
    return Status::error("unknown preset \"" + std::string(preset) +
                         "\" (expected tiny, small or flash-shape)");
  }
  if (layers) c.n_layer = layers;
  if (experts) c.n_expert = experts;
  c.n_hash_layers = std::min(c.n_hash_layers, c.n_layer);
  c.compress_ratios = v4_default_compress_ratios(c.n_layer);
  if (Status s = c.validate(); !s) return s;
  return c;
}

Result<std::vector<std::string>> write_synthetic_model(const SyntheticModelOptions& o) {
  if (Status s = o.config.validate(); !s) return s;
  const unsigned threads =
      o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  Result<GgufTokenizerData> tokenizer = convert_hf_tokenizer(o.tokenizer_json, o.config.n_vocab);
  if (!tokenizer) return tokenizer.status();

  auto make_writer = [&](const V4Config& config, const std::string& name) {
    GgufWriter writer(
        {.alignment = 32, .max_split_bytes = o.max_split_bytes, .progress = o.progress});
    writer.set("general.name", GgufValue::string(name));
    writer.set("general.type", GgufValue::string("model"));
    write_v4_metadata(config, writer);
    write_tokenizer_metadata(*tokenizer, writer);
    return writer;
  };
  const std::string name = "DeepSeek-V4-synthetic-" + std::string(recipe_name(o.recipe));
  // Only the llama.cpp layout counts the MTP block in block_count (spec §5.2); ds4 reads MTP
  // from its own file.
  V4Config file_config = o.config;
  file_config.n_mtp_layers = o.mtp == MtpLayout::kLlamaCpp ? 1 : 0;
  GgufWriter writer = make_writer(file_config, name);
  const MtpLayout in_file = o.mtp == MtpLayout::kLlamaCpp ? MtpLayout::kLlamaCpp : MtpLayout::kNone;
  if (Status s = add_tensors(writer, v4_main_tensors(o.config, in_file), o, threads); !s) return s;
  Result<std::vector<std::string>> paths = writer.write(o.out_path);
  if (!paths || o.mtp != MtpLayout::kDs4) return paths;

  GgufWriter mtp_writer = make_writer(file_config, name + "-mtp");
  if (Status s = add_tensors(mtp_writer, v4_ds4_mtp_tensors(o.config), o, threads); !s) return s;
  Result<std::vector<std::string>> mtp_paths = mtp_writer.write(mtp_path_for(o.out_path));
  if (!mtp_paths) return mtp_paths;
  std::vector<std::string> all = *paths;
  all.insert(all.end(), mtp_paths->begin(), mtp_paths->end());
  return all;
}

}  // namespace v4
